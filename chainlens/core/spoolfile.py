"""The on-disk spool format, shared by the accept path (writer) and the load path (reader).

A spool is a directory with one sub-directory per writer (`w0`, `w1`, …), each
holding numbered segment files. A segment is a sequence of frames:

    u32 little-endian payload length | u32 CRC-32 of the payload | payload

A payload is the rows of one group commit for one table: a kind byte (`E`
events, `J` rejected; `R`, rejected rows without their code, from older
versions), the earliest receive time among them (u64 ms), the row count (u32),
then the rows as ClickHouse `JSONCompactEachRow` lines, so the loader joins
payloads and inserts them as they are, without touching a row. A commit holds
every request of its event-loop turn, so a frame carries tens of requests under
load and the loader's work per frame is shared by all their rows. A writer only
ever appends to its newest segment, holding an exclusive `flock` on it while it
has it open, and starts a new one when it restarts. A segment is open while its
writer holds that lock (`open_segments`); every other is sealed, whether the
writer moved on, stopped or was killed (the kernel releases a dead process's
lock), and whichever process restarted meanwhile: a bad frame in a sealed
segment is a tail torn by a crash and is skipped; in an open one it may be a
frame still being written, so the reader waits; a sealed segment fully loaded
is removed.

Each spool has an identity (`identity`, a random id written once, when the
directory is first used) that goes into every deduplication token, so two
collector nodes, or a spool directory created anew, never send the store the
same token for different rows.

The checkpoint (`checkpoint.json`) records, per segment, how many bytes are in
ClickHouse, and the batch being inserted (`pending`) so that after a crash the
same byte ranges are re-sent with the same deduplication token.
"""

from __future__ import annotations

import fcntl
import os
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

HEADER = struct.Struct("<II")
PAYLOAD = struct.Struct("<cQI")
EVENTS, REJECTED = b"F", b"J"
# Rows written by older versions: events without their `source`, rejected rows without their
# code, field and detail. A spool they left still loads, the missing columns empty.
EVENTS_UNSOURCED = b"E"
REJECTED_UNCODED = b"R"
MAX_FRAME = 64 << 20
SUFFIX = ".seg"
CHECKPOINT = "checkpoint.json"
IDENTITY = "identity"


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


_encode_lines = msgspec.json.Encoder().encode_lines


def rows_body(rows: Sequence[Any]) -> bytes:
    """Rows (EventRow, RejectedRow: array-like structs) as `JSONCompactEachRow` lines, the form
    the store ingests, without the last line break: one encoder call for them all."""
    return _encode_lines(rows)[:-1]


def encode_payload(kind: bytes, received_ms: int, count: int, body: bytes | bytearray) -> bytes:
    """One framed payload of `count` rows, or b"" when there are none."""
    if not count:
        return b""
    return frame(PAYLOAD.pack(kind, received_ms, count) + body)


def encode_rows(kind: bytes, received_ms: int, rows: Sequence[list[Any]]) -> bytes:
    return encode_payload(kind, received_ms, len(rows), rows_body(rows))


def decode_rows(payload: bytes) -> tuple[bytes, int, int, bytes]:
    """(kind, received_ms, row count, JSONCompactEachRow body)."""
    kind, received_ms, count = PAYLOAD.unpack_from(payload)
    body = payload[PAYLOAD.size:]
    if kind in (REJECTED_UNCODED, EVENTS_UNSOURCED):
        missing = ["", "", ""] if kind == REJECTED_UNCODED else [""]
        kind = REJECTED if kind == REJECTED_UNCODED else EVENTS
        body = b"\n".join(orjson.dumps([*orjson.loads(line), *missing]) for line in body.split(b"\n") if line)
    return kind, received_ms, count, body


@dataclass
class Scan:
    """Frames read from one segment starting at `start`."""

    payloads: list[bytes] = field(default_factory=list)
    end: int = 0  # offset after the last good frame
    bad: bool = False  # a frame at `end` is short or fails its checksum


def read_frames(path: Path, start: int, *, max_bytes: int) -> Scan:
    scan = Scan(end=start)
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(max_bytes)
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        body_end = pos + HEADER.size + length
        if length > MAX_FRAME:
            scan.bad = True
            break
        if body_end > len(data):
            # Either the frame is larger than this read or it is not all on disk yet.
            if HEADER.size + length > max_bytes and pos == 0:
                return read_frames(path, start, max_bytes=HEADER.size + length)
            scan.bad = start + body_end > path.stat().st_size
            break
        payload = data[pos + HEADER.size:body_end]
        if zlib.crc32(payload) != crc:
            scan.bad = True
            break
        scan.payloads.append(payload)
        pos = body_end
    else:
        scan.bad = 0 < len(data) - pos < HEADER.size and start + len(data) >= path.stat().st_size
    scan.end = start + pos
    return scan


def segments(root: Path) -> list[Path]:
    """All segments, oldest first within each writer."""
    if not root.is_dir():
        return []
    return sorted(p for d in root.iterdir() if d.is_dir() for p in d.glob("*" + SUFFIX))


def open_segments(paths: list[Path]) -> set[Path]:
    """The segments a live writer is appending to: its newest, while it holds the lock."""
    newest: dict[Path, Path] = {}
    for p in paths:
        newest[p.parent] = max(newest.get(p.parent, p), p)
    return {p for p in newest.values() if _held(p)}


def _held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the shared lock, if it was taken
    return False


def lock_segment(fd: int) -> None:
    """The writer's hold on the segment it appends to, until it closes it."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def spool_bytes(root: Path) -> int:
    total = 0
    for p in segments(root):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def spool_identity(root: Path) -> str:
    """This spool's random identity, created with it; the first process to ask writes it."""
    path = root / IDENTITY
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{IDENTITY}.{os.getpid()}"
    tmp.write_text(uuid.uuid4().hex + "\n")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if another process wrote it first: then theirs stands
        fsync_dir(root)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Checkpoint:
    done: dict[str, int] = field(default_factory=dict)  # segment (relative) -> bytes loaded
    pending: list[list[Any]] = field(default_factory=list)  # [[segment, start, end], …] being inserted

    @classmethod
    def load(cls, root: Path) -> Checkpoint:
        try:
            raw = orjson.loads((root / CHECKPOINT).read_bytes())
        except FileNotFoundError:
            return cls()
        return cls(done=raw.get("done", {}), pending=raw.get("pending", []))

    def save(self, root: Path) -> None:
        atomic_write(root / CHECKPOINT, orjson.dumps({"done": self.done, "pending": self.pending}))
