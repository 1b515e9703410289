"""Nothing accepted is lost: kill -9, torn spool tails, a store outage, a full spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from chainlens.core.fields import Client
from chainlens.core.loading import from_mapping
from chainlens.core.refusals import rejected_row
from chainlens.core.rows import validate_event
from chainlens.core.spoolfile import EVENTS, REJECTED, encode_rows
from chainlens.core.toml_writer import dump_toml
from collector.spool import SpoolWriter
from ingestion.loader import Loader
from ingestion.runner import StoreRunner
from tests.conftest import BROWSER_UA, ORIGIN, beacon, event, free_port, make_config

pytestmark = pytest.mark.slow


def post(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url + "/e", data=body, method="POST", headers={
        "Content-Type": "text/plain", "Origin": ORIGIN, "User-Agent": BROWSER_UA})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def count_ids(srv: Any, ids: list[str]) -> tuple[int, int]:
    """(distinct acked ids stored, rows for them after dedup) via `chainlens sql`."""
    srv.tmp.joinpath("ids.txt").write_text("\n".join(ids))
    rows = srv.sql(
        f"SELECT uniqExact(event_id) AS n, count() AS c FROM (SELECT event_id FROM events FINAL "
        f"WHERE toString(event_id) IN (SELECT * FROM file('{srv.tmp}/ids.txt', 'LineAsString')))")
    return int(rows[0]["n"]), int(rows[0]["c"])


def wait_drained(srv: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get(srv.url + "/readyz")
        if status == 200 and orjson.loads(body)["backlog_bytes"] == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"spool not drained: {body!r}")


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    out = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out += tree(int(child))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status waits to be read


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Poll `check` until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)


def ready(srv: Any) -> bool:
    status, body = get(srv.url + "/readyz")
    return status == 200 and bool(orjson.loads(body)["store_ok"])


class Load:
    """Four clients posting 10-event beacons; the ids of every acknowledged event."""

    def __init__(self, url: str) -> None:
        self.url, self.acked, self.stop = url, [], threading.Event()
        self.answers: dict[int, int] = {}
        self.threads = [threading.Thread(target=self.run) for _ in range(4)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        while not self.stop.is_set():
            events = [event(step="cart", sid=f"k{time.monotonic_ns()}") for _ in range(10)]
            try:
                status, _, _ = post(self.url, beacon(*events))
            except OSError:
                time.sleep(0.05)
                continue  # the collector is gone: these were never acknowledged
            self.answers[status] = self.answers.get(status, 0) + 1
            if status == 202:
                self.acked.extend(e["id"] for e in events)

    def end(self) -> list[str]:
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.acked


@pytest.mark.parametrize("target", ["group", "supervisor", "store", "worker"])
def test_kill_9_of_any_part_under_load_loses_no_acknowledged_event(serve_factory: Any, target: str) -> None:
    srv = serve_factory()
    assert srv.proc is not None
    old = tree(srv.proc.pid)
    store_pid = int(orjson.loads((srv.tmp / "spool" / "admin.json").read_bytes())["pid"])
    workers = [p for p in old[1:] if p != store_pid
               and b"--multiprocessing-fork" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(workers) == 2
    load = Load(srv.url)
    wait_until(lambda: len(load.acked) >= 200, 30, "the load acknowledged before the kill")
    victim = {"group": -srv.proc.pid, "supervisor": srv.proc.pid, "store": store_pid, "worker": workers[0]}[target]
    os.kill(victim, signal.SIGKILL) if victim > 0 else os.killpg(-victim, signal.SIGKILL)
    time.sleep(2)  # not a wait: the load goes on for two seconds with the part gone
    if target in ("group", "supervisor"):
        acked = load.end()
        srv.proc.wait(10)
        assert wait_gone(old, 10) == [], "a process of the old generation outlived its supervisor"
        srv.start()  # the same spool and store: a clean start, not a degraded one
    else:
        # The supervisor starts the killed process again; serving never stopped.
        assert wait_gone([victim], 10) == []
        deadline = time.monotonic() + 60
        while not (get(srv.url + "/readyz")[0] == 200 and len(tree(srv.proc.pid)) == len(old)):
            assert time.monotonic() < deadline, f"{target} not restarted: {srv.log.read_text()[-2000:]}"
            time.sleep(0.2)
        before = len(load.acked)
        wait_until(lambda: len(load.acked) >= before + 100, 30, "the load acknowledged after the restart")
        acked = load.end()
    assert len(acked) > 200, f"the load should have been acknowledged many times: {load.answers}"
    assert not any(status >= 500 and status != 503 for status in load.answers), load.answers
    # Each worker keeps its store status for a second: one that asked while the store process
    # was starting may still say so. Every worker must see the store again within seconds.
    wait_until(lambda: all(ready(srv) for _ in range(4)), 10, "every worker to see the store process again")
    wait_drained(srv)
    stored, rows = count_ids(srv, acked)
    assert stored == len(set(acked)) == rows  # all there, each once
    assert srv.stop() == 0


def test_torn_spool_tail_is_skipped_without_losing_earlier_records(serve_factory: Any, tmp_path: Path) -> None:
    srv = serve_factory(start=False)
    good = [event(step="cart", sid=f"t{i}") for i in range(6)]
    rows_frames = []
    site = from_mapping(srv.config).site("demo")
    now = int(time.time() * 1000)
    for chunk in (good[:3], good[3:]):
        rows = [validate_event(e, site=site, client=Client(), received_ms=now, sent_at=None) for e in chunk]
        rows_frames.append(encode_rows(EVENTS, now, rows))
    segment = tmp_path / "spool" / "w7" / "000000000001.seg"  # a writer that is not coming back
    segment.parent.mkdir(parents=True)
    torn = encode_rows(EVENTS, now, [["x"] * 5])
    segment.write_bytes(rows_frames[0] + rows_frames[1] + torn[: len(torn) // 2])  # a crash mid-write
    srv.start()
    wait_drained(srv)
    assert count_ids(srv, [e["id"] for e in good]) == (6, 6)
    assert not segment.exists()  # sealed, loaded, removed
    assert "torn spool tail skipped" in srv.log.read_text()
    assert srv.stop() == 0


def test_store_outage_keeps_accepting_then_the_backlog_lands(serve_factory: Any, tmp_path: Path) -> None:
    down = make_config(tmp_path, collector={"workers": 1}, dsn=f"http://default:@127.0.0.1:{free_port()}/chainlens")
    srv = serve_factory(down)
    status, body = get(srv.url + "/readyz")
    assert status == 503 and orjson.loads(body)["store_ok"] is False
    events = [event(step="cart", sid=f"o{i}") for i in range(30)]
    for i in range(0, 30, 10):
        assert post(srv.url, beacon(*events[i:i + 10]))[0] == 202
    wait_until(lambda: "insert failed; retrying" in srv.log.read_text(), 20, "the loader's retry in the log")
    metrics = get(srv.url + "/metrics")[1].decode()
    assert "chainlens_store_up 0.0" in metrics
    assert srv.stop() == 0  # stops with the backlog kept in the spool
    srv.config["store"]["dsn"] = f"chdb://{tmp_path}/db"  # the store is back (same spool)
    srv.path.write_text(dump_toml(srv.config))
    srv.start()
    wait_drained(srv)
    assert count_ids(srv, [e["id"] for e in events]) == (30, 30)
    assert srv.stop() == 0


def test_full_spool_answers_503_with_retry_after(serve_factory: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path, collector={"workers": 1, "spool_max_bytes": 4000},
                         dsn=f"http://default:@127.0.0.1:{free_port()}/x")
    srv = serve_factory(config)
    statuses = []
    for i in range(12):
        status, headers, body = post(srv.url, beacon(*[event(step="cart", sid=f"f{i}") for _ in range(2)]))
        statuses.append(status)
        if status == 503:
            assert headers["Retry-After"] == "5"
            assert "spool" in orjson.loads(body)["error"]
    assert statuses[0] == 202 and 503 in statuses
    assert get(srv.url + "/healthz")[0] == 200  # no crash
    assert srv.stop() == 0


def test_metrics_sum_over_all_processes(serve_factory: Any) -> None:
    srv = serve_factory()
    for i in range(20):
        post(srv.url, beacon(event(step="cart", sid=f"m{i}"), event(step="nowhere")))
    post(srv.url, b"{broken")
    wait_drained(srv)
    # Each worker publishes its accept-path counts once a second (docs/architecture.md, "Keeping the accept path fast").
    deadline = time.monotonic() + 5
    text = get(srv.url + "/metrics")[1].decode()
    while 'chainlens_http_requests_total{route="/e",status="202"} 20.0' not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = get(srv.url + "/metrics")[1].decode()
    assert 'chainlens_http_requests_total{route="/e",status="202"} 20.0' in text, text
    assert 'chainlens_events_accepted_total{site="demo"} 20.0' in text
    assert 'chainlens_events_rejected_total{reason="step"} 20.0' in text
    assert 'chainlens_events_rejected_total{reason="request_400"} 1.0' in text
    assert "chainlens_load_batch_rows_count" in text and "chainlens_insert_seconds_bucket" in text
    assert "chainlens_spool_fsyncs_total" in text and "chainlens_spool_oldest_unloaded_seconds" in text
    assert srv.stop() == 0


def test_the_store_process_yields_cpu_and_disk_to_the_accept_workers(serve_factory: Any) -> None:
    srv = serve_factory()
    assert srv.proc is not None
    store = psutil.Process(int(orjson.loads((srv.tmp / "spool" / "admin.json").read_bytes())["pid"]))
    workers = [p for p in psutil.Process(srv.proc.pid).children() if p.pid != store.pid
               and "--multiprocessing-fork" in p.cmdline()]
    assert len(workers) == 2
    assert store.nice() == 19 and store.ionice().ioclass == psutil.IOPRIO_CLASS_IDLE
    # The engine's threads inherit it, but for the ones ClickHouse raises to read its memory
    # use on time (MemoryWorker, idle between reads). A pool thread started from those inherits
    # -20 (seen as BgSchPool): the store lowers it within 2 s, so a thread above 19 under another
    # name fails the test only if it stays so.
    def higher() -> dict[str, int]:
        threads = {t.id: (os.getpriority(os.PRIO_PROCESS, t.id), Path(f"/proc/{store.pid}/task/{t.id}/comm")
                          .read_text().strip()) for t in store.threads()}
        assert len(threads) > 5
        return {name: nice for nice, name in threads.values() if nice != 19 and name != "MemoryWorker"}

    deadline = time.monotonic() + 10
    while (found := higher()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not found, found  # thread name: its niceness
    assert all(w.nice() == 0 and w.ionice().ioclass != psutil.IOPRIO_CLASS_IDLE for w in workers)
    assert srv.stop() == 0


def test_a_thread_begun_above_the_store_niceness_is_lowered() -> None:
    # A pool thread started from ClickHouse's MemoryWorker (-20) inherits its priority.
    script = """
import os, sys, threading
os.nice(19)
from ingestion.service import lower_raised_threads
ready, done = threading.Event(), threading.Event()
def raised():
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -5)
    except PermissionError:
        sys.exit(3)
    ready.set()
    done.wait()
thread = threading.Thread(target=raised, daemon=True)
thread.start()
if not ready.wait(10):
    sys.exit(3)
first = lower_raised_threads()
print(len(first), os.getpriority(os.PRIO_PROCESS, thread.native_id), len(lower_raised_threads()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    if out.returncode == 3:
        pytest.skip("raising a thread's priority needs CAP_SYS_NICE")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "19", "0"], out.stdout  # lowered, to 19, and once


def test_sigterm_stops_everything_within_a_bound(serve_factory: Any) -> None:
    srv = serve_factory()
    post(srv.url, beacon(event(step="cart")))
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 30
    assert int(srv.sql("SELECT count() AS n FROM events")[0]["n"]) == 1


def test_a_client_trickling_its_headers_is_cut_off(serve_factory: Any, tmp_path: Path) -> None:
    import socket
    srv = serve_factory(make_config(tmp_path, collector={"workers": 1, "idle_timeout_s": 1.0}))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the collector
        assert time.monotonic() - started < 5
    assert get(srv.url + "/healthz")[0] == 200
    assert srv.stop() == 0


def test_a_body_trickled_in_gets_408(serve_factory: Any, tmp_path: Path) -> None:
    import socket
    srv = serve_factory(make_config(tmp_path, collector={"workers": 1, "idle_timeout_s": 1.0}))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n{\"si")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") and b"not received within 1 s" in answer
    assert srv.stop() == 0


def test_a_full_disk_answers_503_and_keeps_serving(serve_factory: Any, tmp_path: Path) -> None:
    import subprocess
    spool = tmp_path / "spool"
    spool.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(spool)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs to mount a small tmpfs (root) to fill a disk")
    try:
        config = make_config(tmp_path, collector={"workers": 1}, dsn=f"http://default:@127.0.0.1:{free_port()}/x")
        srv = serve_factory(config)
        statuses = []
        for i in range(60):
            status, headers, body = post(srv.url, beacon(*[event(step="cart", sid=f"d{i}-{j}") for j in range(10)]))
            statuses.append(status)
            if status == 503:
                assert "disk full" in orjson.loads(body)["error"] and headers["Retry-After"]
                break
        assert statuses[0] == 202 and statuses[-1] == 503
        assert get(srv.url + "/healthz")[0] == 200
        assert srv.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


async def test_spools_with_the_same_segment_names_and_ranges_both_land(settings: Any, tmp_path: Path) -> None:
    """Two collector nodes into one store: each spool's first segment is `w0/000000000001.seg`,
    with the same byte ranges; byte-identical rejected rows too. Each spool's identity keeps
    their deduplication tokens apart, so nothing is dropped as a duplicate."""
    runner = StoreRunner(settings.store.dsn)
    site, now = settings.site("demo"), int(time.time() * 1000)
    refused = [rejected_row(received_ms=now, site_id="demo", source="e", reason="400: body is not valid JSON",
                            payload=b"{not json", code="bad_body")]
    ids = []
    for node in ("a", "b"):
        events = [event(step="cart") for _ in range(5)]
        rows = [validate_event(e, site=site, client=Client(), received_ms=now, sent_at=None) for e in events]
        segment = tmp_path / node / "w0" / "000000000001.seg"
        segment.parent.mkdir(parents=True)
        segment.write_bytes(encode_rows(EVENTS, now, rows) + encode_rows(REJECTED, now, refused))
        ids += [e["id"] for e in events]
    loaders = [Loader(tmp_path / node, runner) for node in ("a", "b")]
    assert loaders[0].identity != loaders[1].identity
    for loader in loaders:
        assert await loader.load_once() == 6
    ids_sql = ", ".join(f"'{i}'" for i in ids)
    stored = await runner.call(lambda c: c.query(
        f"SELECT uniqExact(event_id) FROM events WHERE event_id IN ({ids_sql})").result_rows)
    kept = await runner.call(lambda c: c.query("SELECT count() FROM events_rejected").result_rows)
    assert stored == [(10,)] and kept == [(2,)]
    # The identity is the spool's for good: a restarted loader reads the same one.
    assert Loader(tmp_path / "a", runner).identity == loaders[0].identity
    await runner.close()


async def test_a_store_restarted_under_live_writers_never_removes_their_segments(settings: Any,
                                                                               tmp_path: Path) -> None:
    """The store process restarts while the accept workers go on appending: a segment it has
    loaded to its end is still being written, and what comes after must land too."""
    runner = StoreRunner(settings.store.dsn)
    site, now = settings.site("demo"), int(time.time() * 1000)
    root = tmp_path / "spool"
    writer = SpoolWriter(root, "w0", max_bytes=1 << 30)
    writer.open()
    events = [event(step="cart") for _ in range(7)]
    rows = [validate_event(e, site=site, client=Client(), received_ms=now, sent_at=None) for e in events]
    await writer.append(now, rows[:3])
    loader = Loader(root, runner)  # started after the writer, as a restarted store is
    assert await loader.load_once() == 3
    segment = root / "w0" / "000000000001.seg"
    assert segment.exists(), "a segment its writer still holds was removed"
    await writer.append(now, rows[3:6])
    assert await loader.load_once() == 3
    await writer.close()  # sealed now, and loaded to its end: the next pass that loads removes it
    restarted = SpoolWriter(root, "w0", max_bytes=1 << 30)
    restarted.open()
    await restarted.append(now, rows[6:])
    assert await loader.load_once() == 1
    assert not segment.exists()
    await restarted.close()
    ids = ", ".join(f"'{e['id']}'" for e in events)
    stored = await runner.call(lambda c: c.query(
        f"SELECT uniqExact(event_id) FROM events WHERE event_id IN ({ids})").result_rows)
    assert stored == [(7,)]
    await runner.close()


async def test_a_crash_while_removing_loaded_segments_never_leaves_a_dangling_batch(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window the soak found: a segment removed before the checkpoint that says it is loaded."""
    runner = StoreRunner(settings.store.dsn)
    site, now = settings.site("demo"), int(time.time() * 1000)
    root = tmp_path / "spool"
    events = [event(step="cart") for _ in range(6)]
    for i, chunk in enumerate((events[:3], events[3:])):
        segment = root / f"w{i}" / "000000000001.seg"
        segment.parent.mkdir(parents=True)
        rows = [validate_event(e, site=site, client=Client(), received_ms=now, sent_at=None) for e in chunk]
        segment.write_bytes(encode_rows(EVENTS, now, rows))

    def crash(self: Path, missing_ok: bool = False) -> None:
        raise KeyboardInterrupt("killed while removing a loaded segment")

    first = Loader(root, runner)
    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        await first.load_once()
    monkeypatch.undo()
    on_disk = orjson.loads((root / "checkpoint.json").read_bytes())
    assert on_disk["pending"] == [] and len(on_disk["done"]) == 2  # the batch is recorded as loaded

    # A spool left by the old order: the pending batch names a segment that is gone.
    (root / "w0" / "000000000001.seg").unlink()
    on_disk["pending"] = [["w0/000000000001.seg", 0, 10, 10], ["w1/000000000001.seg", 0, 0, 0]]
    on_disk["done"] = {}
    (root / "checkpoint.json").write_bytes(orjson.dumps(on_disk))
    restarted = Loader(root, runner)
    for _ in range(3):
        await restarted.load_once()
    ids = ", ".join(f"'{e['id']}'" for e in events)
    stored = await runner.call(lambda c: c.query(
        f"SELECT uniqExact(event_id) FROM events WHERE event_id IN ({ids})").result_rows)
    assert stored == [(6,)]
    assert restarted.checkpoint.pending == [] and not list(root.rglob("*.seg"))
    await runner.close()
