"""Collector throughput and latency, durable ack on, beside a bare aiohttp handler.

    .venv/bin/python bench/collector.py [--seconds 5] [--rounds 3] [--profile [--profile-events N]]

wrk (Debian's package; installed when missing and apt-get is usable) runs
pinned to core 0; the servers under test run pinned to core 1, all up at once
and loaded in turn, so that each ratio compares runs seconds apart on one
machine state:
- a bare aiohttp handler that reads the body and answers 202;
- the same handler spooling the body through chainlens's spool writer first
  (a durable ack and nothing else);
- `chainlens serve` with one accept worker and its store process (embedded
  ClickHouse). Every request carries fresh event ids (a Lua counter). Prints req/s,
events/s, p50/p99 latency, CPU per request and per event, fsyncs/s and RSS, with
128 connections; the p99 at 80% of the maximum rate, with 32 and 128 connections,
comes from wrk's `delay()` pacing (closed-loop, so it understates queueing), twice:
with independent arrivals (exponential waits, as from many browsers; the target)
and in lockstep (equal waits, so the connections of one group commit send again
together: bursts no real traffic has, printed to show what bursts cost).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from chainlens.core.toml_writer import dump_toml  # noqa: E402

LUA = r"""
local n = 0
local tid = 0
local events_per = tonumber(os.getenv("BENCH_EVENTS") or "1")
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local independent = os.getenv("BENCH_ARRIVALS") == "independent"
local ts = os.time() * 1000
setup = function(thread) thread:set("tid", math.random(0, 0xffffff)) end
init = function(args) tid = tid end
delay = function()  -- a fractional pace in ms, dithered between the two whole ms around it
  local wait = pace
  -- Independent shoppers: an exponential wait of the same mean, so arrivals are a Poisson stream.
  if independent then wait = -math.log(1 - math.random()) * pace end
  local base = math.floor(wait)
  if math.random() < wait - base then return base + 1 end
  return base
end
request = function()
  local parts = {}
  for i = 1, events_per do
    n = n + 1
    parts[i] = string.format(
      '{"id":"%08x-0000-4000-8000-%012x","type":"step","ts":%d,"sid":"s%x","aid":"a","step":"cart",' ..
      '"url":"https://shop.example/cart","props":{"items":3}}', tid, n, ts, n)
  end
  local body = '{"site":"demo","sent_at":' .. ts .. ',"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/e", {["Content-Type"] = "text/plain", ["Origin"] = "http://127.0.0.1:8000",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%f p50=%f p99=%f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""

# Many browsers at once: a collector's concurrency is high, and group commit shares an
# fsync among the requests that arrive during the previous one.
CONNECTIONS = 128

BARE = """
import asyncio, sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"accepted": 1}, status=202)
app = web.Application()
app.router.add_post("/e", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# The durable acknowledgement alone: the bare handler, plus the body spooled as one row through
# chainlens's own spool writer (group commit, fdatasync) before the 202.
DURABLE = """
import sys, time
from pathlib import Path
from aiohttp import web
from collector.spool import SpoolWriter
async def handle(request):
    body = await request.read()
    await request.app["spool"].append(int(time.time() * 1000), [[body.decode()]])
    return web.json_response({"accepted": 1}, status=202)
async def spool(app):
    app["spool"] = SpoolWriter(Path(sys.argv[2]), "w0", max_bytes=1 << 40)
    app["spool"].open()
    yield
    await app["spool"].close()
app = web.Application()
app.cleanup_ctx.append(spool)
app.router.add_post("/e", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is needed (apt-get install wrk)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wrk(url: str, lua: Path, *, seconds: int, events: int, connections: int = CONNECTIONS,
        delay_ms: float = 0, arrivals: str = "lockstep") -> dict:
    env = {**os.environ, "BENCH_EVENTS": str(events), "BENCH_DELAY_MS": str(delay_ms), "BENCH_ARRIVALS": arrivals}
    out = subprocess.run(
        ["taskset", "-c", "0", ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(lua), url],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    match = re.search(r"RESULT (.*)", out)
    assert match, out
    fields = dict(kv.split("=") for kv in match.group(1).split())
    result = {k: float(v) for k, v in fields.items()}
    result["rps"] = result["requests"] / result["seconds"]
    result["eps"] = result["rps"] * events
    return result


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def line(label: str, r: dict, extra: str = "") -> None:
    print(f"{label:<44} {r['rps']:>9,.0f} req/s {r['eps']:>10,.0f} events/s  p50 {r['p50']:6.2f} ms  "
          f"p99 {r['p99']:6.2f} ms  errors {int(r['errors'] + r['non2xx'])}{extra}")


# Where a single-event request's worker CPU goes: each py-spy sample is charged to the innermost
# frame of its stack that one of these matches (file fragment, function or "" for any).
COMPONENTS = [
    ("metrics (prometheus_client)", "prometheus_client/", ""),
    ("rate limiter", "collector/ratelimit.py", ""),
    ("CORS", "collector/cors.py", ""),
    ("spool framing and group commit", "collector/spool.py", ""),
    ("spool framing and group commit", "chainlens/core/spoolfile.py", ""),
    ("decode (msgspec) and the envelope", "chainlens/core/decoding.py", ""),
    ("rows: check and build", "chainlens/core/rows.py", ""),
    ("rows: check and build", "chainlens/core/props.py", ""),
    ("rows: check and build", "chainlens/core/fields.py", ""),
    ("body read", "collector/beacon.py", "read_body"),
    ("answer: 202 body, counters", "collector/beacon.py", "answer"),
    ("accept: the rest (UA, site, sender)", "collector/beacon.py", ""),
    ("user agent parsing", "chainlens/core/agents.py", ""),
    ("handler and route wrapper (request id, count, client address)", "collector/app.py", ""),
    ("aiohttp: response building and writing", "aiohttp/web_response.py", ""),
    ("aiohttp: request object and routing", "aiohttp/web_request.py", ""),
    ("aiohttp: request object and routing", "aiohttp/web_urldispatcher.py", ""),
    ("aiohttp: request object and routing", "aiohttp/web_app.py", ""),
    ("aiohttp: protocol, HTTP parsing, streams", "aiohttp/", ""),
    ("spool sync thread and its hand-off (wall time: mostly waiting on the disk)", "concurrent/futures/", ""),
    ("spool sync thread and its hand-off (wall time: mostly waiting on the disk)", "threading.py", ""),
    ("event loop (asyncio, selectors, sockets)", "asyncio/", ""),
    ("event loop (asyncio, selectors, sockets)", "selectors.py", ""),
]


def profile(url: str, lua: Path, pid: int, *, seconds: int, work: Path, events: int = 1) -> None:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    out = work / "worker.txt"
    cpu = cpu_s(pid)
    sampler = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "500",
                                "--duration", str(seconds), "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = wrk(url, lua, seconds=seconds, events=events)
    sampler.wait(60)
    per_request = (cpu_s(pid) - cpu) / r["requests"] * 1e6
    totals: dict[str, int] = {}
    for row in out.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        frames = stack.split(";")
        label = "other Python"
        for frame in reversed(frames):  # innermost first
            name = next((c for c, path, fn in COMPONENTS if path in frame and (not fn or frame.startswith(fn))),
                        None)
            if name:
                label = name
                break
        totals[label] = totals.get(label, 0) + int(count)
    samples = sum(totals.values()) or 1
    print(f"\nworker CPU per {events}-event request: {per_request:,.0f} µs ({r['rps']:,.0f} req/s under py-spy), "
          f"by where py-spy found it ({samples:,} samples):")
    for label, count in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<76} {count / samples * per_request:7.1f} µs  {count / samples:6.1%}")


def paced(url: str, lua: Path, *, seconds: int, connections: int, target: float, arrivals: str) -> dict:
    """A run paced to `target` req/s: each connection waits between its requests (closed loop,
    so the pace is corrected after short trials until one lands within 3% of it).

    `independent`: each wait is drawn from an exponential distribution, so the connections send
    like shoppers' browsers, each on its own. `lockstep`: every wait is the same, so connections
    answered by one group commit send their next requests together, in bursts."""
    delay = connections * 1000 / target
    for _ in range(4):
        trial = wrk(url, lua, seconds=2, events=1, connections=connections, delay_ms=delay, arrivals=arrivals)
        if abs(trial["rps"] / target - 1) < 0.03:
            break
        delay = max(0.0, delay - (connections / trial["rps"] - connections / target) * 1000)
    return wrk(url, lua, seconds=seconds, events=1, connections=connections, delay_ms=delay, arrivals=arrivals)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare and chainlens runs alternate this many times; the ratio is their median")
    parser.add_argument("--profile", action="store_true",
                        help="also sample the accept worker with py-spy during a run (of --profile-events "
                             "per beacon) and print where its CPU per request goes (pip installs py-spy into the "
                             "venv when missing)")
    parser.add_argument("--profile-events", type=int, default=1, help="the events per beacon of the profiled run")
    args = parser.parse_args()
    ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="chainlens-bench-"))
    lua = work / "beacon.lua"
    lua.write_text(LUA)
    print(f"machine: {os.cpu_count()} cores; wrk pinned to core 0, servers to core 1; {args.seconds} s per run, "
          f"{CONNECTIONS} connections; bare and chainlens runs alternate ({args.rounds} rounds)\n")

    port = free_port()
    bare = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", BARE, str(port)])
    bare_url = f"http://127.0.0.1:{port}"
    wait_up(bare_url + "/e")
    port = free_port()
    durable = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", DURABLE, str(port), str(work / "durable")],
                               cwd=ROOT)
    durable_url = f"http://127.0.0.1:{port}"
    wait_up(durable_url + "/e")

    port = free_port()
    config = {
        "store": {"dsn": f"chdb://{work}/db"},
        "collector": {"port": port, "workers": 1, "spool_dir": str(work / "spool"), "rate_limit_rps": 0.0},
        "rollup": {"every_s": 0},
    }
    (work / "chainlens.toml").write_text(dump_toml(config))
    with open(work / "serve.log", "w") as log:
        serve = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "chainlens.cli", "serve",
                                  "-c", str(work / "chainlens.toml")], cwd=ROOT, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/readyz")
    store_pid = int(orjson.loads((work / "spool" / "admin.json").read_bytes())["pid"])
    workers = [p for p in children(serve.pid) if p != store_pid and b"--multiprocessing-fork" in
               Path(f"/proc/{p}/cmdline").read_bytes()]

    def measured(label: str, events: int) -> dict:
        fsyncs = metric(url, "chainlens_spool_fsyncs_total")
        cpu, store_cpu = sum(cpu_s(p) for p in workers), cpu_s(store_pid)
        r = wrk(url, lua, seconds=args.seconds, events=events)
        per_request = (sum(cpu_s(p) for p in workers) - cpu) / r["requests"] * 1e6
        store_per_event = (cpu_s(store_pid) - store_cpu) / (r["requests"] * events) * 1e6
        time.sleep(1.2)  # the workers publish their counts once a second
        rate = (metric(url, "chainlens_spool_fsyncs_total") - fsyncs) / r["seconds"]
        line(label, r, f"  worker CPU {per_request:,.0f} µs/request  store CPU {store_per_event:.1f} µs/event"
                       f"  fsyncs/s {rate:,.0f}  RSS worker {max(rss_mb(p) for p in workers):.0f} MB, "
                       f"store process {rss_mb(store_pid):.0f} MB")
        return r

    for warm in (bare_url, durable_url, url):  # caches filled, lazy imports done, the store's schema made
        wrk(warm, lua, seconds=2, events=1)
    ratios, durables, singles, fifties = [], [], [], []
    for n in range(1, args.rounds + 1):
        cpu = cpu_s(bare.pid)
        b = wrk(bare_url, lua, seconds=args.seconds, events=1)
        line(f"round {n}: bare aiohttp handler, 1-event", b,
             f"  CPU {(cpu_s(bare.pid) - cpu) / b['requests'] * 1e6:,.0f} µs/request")
        cpu = cpu_s(durable.pid)
        d = wrk(durable_url, lua, seconds=args.seconds, events=1)
        line(f"round {n}: bare handler + spool, 1-event", d,
             f"  CPU {(cpu_s(durable.pid) - cpu) / d['requests'] * 1e6:,.0f} µs/request")
        r = measured(f"round {n}: chainlens serve, 1-event", 1)
        ratios.append(r["rps"] / b["rps"])
        durables.append(d["rps"] / b["rps"])
        singles.append(r)
        print(f"round {n}: chainlens {ratios[-1]:.2f}x the bare handler; the bare handler + spool {durables[-1]:.2f}x")
    line("bare aiohttp handler, 50-event beacons", wrk(bare_url, lua, seconds=args.seconds, events=50))
    for server in (bare, durable):
        server.terminate()
        server.wait()
    for n in range(1, args.rounds + 1):
        fifties.append(measured(f"round {n}: chainlens serve, 50-event", 50)["eps"])
    if args.profile:
        profile(url, lua, workers[0], seconds=args.seconds, work=work, events=args.profile_events)
    # p99 at 80% of the maximum single-event rate, with few and with many connections.
    top = statistics.median(r["rps"] for r in singles)
    tails = {}
    for arrivals in ("independent", "lockstep"):
        for connections in (32, CONNECTIONS):
            r = paced(url, lua, seconds=args.seconds, connections=connections, target=0.8 * top, arrivals=arrivals)
            tails[arrivals, connections] = r
            line(f"chainlens serve, paced, {arrivals}, {connections} connections", r,
                 f"  ({r['rps'] / top:.0%} of the maximum)")
    serve.send_signal(signal.SIGTERM)
    serve.wait(120)
    print()
    print(f"single-event req/s vs bare handler: {statistics.median(ratios):.2f}x median "
          f"({', '.join(f'{x:.2f}' for x in ratios)}) (target >= 0.65)")
    print(f"the bare handler + spool (a durable ack and nothing else): {statistics.median(durables):.2f}x median")
    print(f"50-event beacons: {statistics.median(fifties):,.0f} events/s median (target >= 150,000)")
    for (arrivals, connections), r in tails.items():
        target = " (target <= 10 ms)" if arrivals == "independent" else ", arrivals in bursts"
        print(f"p99 at {r['rps'] / top:.0%} load, {connections} connections: {r['p99']:.2f} ms{target}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
