"""On-disk spool: append-only segments of CRC-checked records, replayed in order.

Layout: ``<dir>/seg-<id>.twsp``; a segment starts with ``TWSP\\x01`` and holds records framed as
``u32 length | u32 crc32(payload) | payload`` with ``payload = u16 key length | key | value``.
Segments are read lowest id first; records a previous process could not deliver are *prepended* as
a segment with a lower id, so the replay order stays the emit order (per run, per partition). A torn
tail (a crash mid-write) or a record whose CRC does not match is skipped and counted, never replayed.
The total size is capped; an append that would pass the cap is refused (the caller counts a drop).

The configured directory is a root of *slots* (``slot-0``, ``slot-1``, ...): a tracer owns the lowest
slot nobody holds (``flock`` on ``<slot>/LOCK``), so several tracers in one process or on one machine
share a root, and a restarted agent takes its slot back and replays what was left in it. The spool is
used by the delivery worker thread only (and by ``close`` after that thread stopped), so it takes no
locks itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tripwire.producers.errors import SpoolError

logger = logging.getLogger(__name__)

MAGIC = b"TWSP\x01"
_HDR = struct.Struct("<II")
_KEYLEN = struct.Struct("<H")
_FIRST_ID = 10**12  # room below for prepended segments
_MAX_RECORD = 64 * 1024 * 1024
MAX_SLOTS = 256


def _name(seg_id: int) -> str:
    return f"seg-{seg_id:016d}.twsp"


def encode_record(key: bytes, value: bytes) -> bytes:
    payload = _KEYLEN.pack(len(key)) + key + value
    return _HDR.pack(len(payload), zlib.crc32(payload)) + payload


def decode_segment(data: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
    """The valid records of a segment's bytes and the number of corrupt/torn ones skipped."""
    records: list[tuple[bytes, bytes]] = []
    bad = 0
    if not data.startswith(MAGIC):
        return records, 1 if data else 0
    pos = len(MAGIC)
    end = len(data)
    while pos < end:
        if pos + _HDR.size > end:
            bad += 1  # torn header
            break
        length, crc = _HDR.unpack_from(data, pos)
        start = pos + _HDR.size
        if length > _MAX_RECORD or start + length > end:
            bad += 1  # torn or garbled length: nothing after it can be framed
            break
        payload = data[start : start + length]
        pos = start + length
        if zlib.crc32(payload) != crc or length < _KEYLEN.size:
            bad += 1
            continue
        (klen,) = _KEYLEN.unpack_from(payload, 0)
        if _KEYLEN.size + klen > length:
            bad += 1
            continue
        records.append((payload[2 : 2 + klen], payload[2 + klen :]))
    return records, bad


@dataclass
class SpoolStats:
    appended: int = 0
    refused: int = 0
    corrupt: int = 0
    segments_deleted: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Spool:
    """A directory of segments; see the module docstring."""

    def __init__(self, directory: str | Path, *, max_bytes: int, segment_bytes: int, slot: int | None = None) -> None:
        self.root = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.stats = SpoolStats()
        self.dir, self._lock_fd = self._take_slot(slot)
        self._segments: dict[int, int] = {}  # id -> size in bytes (closed and active)
        self._total = 0  # running sum of segment sizes: read from other threads without iterating
        for p in self.dir.glob("seg-*.twsp"):
            try:
                size = p.stat().st_size
                self._segments[int(p.stem[4:])] = size
                self._total += size
            except (ValueError, OSError):
                logger.warning("ignoring unexpected spool file path=%s", p)
        self._active_id: int | None = None
        self._active: BinaryIO | None = None
        self._active_records = 0
        self._checked_out: set[int] = set()
        self._closed = False

    def _take_slot(self, only: int | None) -> tuple[Path, int]:
        for i in range(MAX_SLOTS) if only is None else (only,):
            slot = self.root / f"slot-{i}"
            try:
                slot.mkdir(parents=True, exist_ok=True)
                fd = os.open(slot / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as e:
                raise SpoolError(f"cannot open spool directory {slot}: {e}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            return slot, fd
        if only is not None:
            raise SpoolError(f"slot {only} of spool directory {self.root} is in use")
        raise SpoolError(f"all {MAX_SLOTS} slots of spool directory {self.root} are in use")

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return self._total

    def has_unread(self) -> bool:
        """Whether some segment holds records not yet handed out for replay."""
        for seg_id in self._segments:
            if seg_id in self._checked_out:
                continue
            if seg_id == self._active_id and self._active_records == 0:
                continue
            return True
        return False

    def is_empty(self) -> bool:
        return not self._checked_out and not self.has_unread()

    def segment_ids(self) -> list[int]:
        return sorted(self._segments)

    # -- writing -----------------------------------------------------------------------------------
    def _open_active(self) -> None:
        seg_id = max(self._segments, default=_FIRST_ID - 1) + 1
        path = self.dir / _name(seg_id)
        f = open(path, "xb")  # noqa: SIM115 - kept open across appends
        f.write(MAGIC)
        self._active, self._active_id, self._active_records = f, seg_id, 0
        self._segments[seg_id] = len(MAGIC)
        self._total += len(MAGIC)

    def _seal_active(self) -> None:
        if self._active is None:
            return
        self._active.flush()
        os.fsync(self._active.fileno())
        self._active.close()
        if self._active_records == 0 and self._active_id is not None:
            # nothing was written: do not leave an empty segment behind
            self._remove_file(self._active_id)
        self._active, self._active_id, self._active_records = None, None, 0

    def append(self, key: bytes, value: bytes) -> bool:
        """Append one record; False if the size cap (or an I/O error) refuses it."""
        rec = encode_record(key, value)
        if self.total_bytes + len(rec) > self.max_bytes:
            self.stats.refused += 1
            return False
        try:
            if self._active is None or self._segments[self._active_id] + len(rec) > self.segment_bytes:  # type: ignore[index]
                if self._active is not None and self._active_records > 0:
                    self._seal_active()
                if self._active is None:
                    self._open_active()
            assert self._active is not None and self._active_id is not None
            self._active.write(rec)
        except OSError as e:
            self.stats.refused += 1
            logger.error("spool write failed dir=%s error=%s", self.dir, e)
            return False
        self._segments[self._active_id] += len(rec)
        self._total += len(rec)
        self._active_records += 1
        self.stats.appended += 1
        return True

    def prepend(self, records: list[tuple[bytes, bytes]]) -> int:
        """Write ``records`` as a new segment read before every existing one (durably). Returns how many."""
        if not records:
            return 0
        seg_id = min(self._segments, default=_FIRST_ID) - 1
        data = bytearray(MAGIC)
        for key, value in records:
            data += encode_record(key, value)
        path = self.dir / _name(seg_id)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._segments[seg_id] = len(data)
        self._total += len(data)
        self.stats.appended += len(records)
        return len(records)

    def flush(self) -> None:
        if self._active is not None:
            self._active.flush()

    # -- reading -----------------------------------------------------------------------------------
    def checkout(self) -> tuple[int, list[tuple[bytes, bytes]]] | None:
        """The lowest unread segment and its records (the active one is sealed first); None if none."""
        for seg_id in sorted(self._segments):
            if seg_id in self._checked_out:
                continue
            if seg_id == self._active_id:
                if self._active_records == 0:
                    continue
                self._seal_active()
            try:
                data = (self.dir / _name(seg_id)).read_bytes()
            except OSError as e:
                logger.error("spool read failed segment=%s error=%s", seg_id, e)
                self._checked_out.add(seg_id)
                return seg_id, []
            records, bad = decode_segment(data)
            if bad:
                self.stats.corrupt += bad
                logger.warning("spool segment had corrupt or torn records segment=%s skipped=%d", seg_id, bad)
            self._checked_out.add(seg_id)
            return seg_id, records
        return None

    def release(self, seg_id: int) -> None:
        """Return a checked-out segment unread (it will be handed out again)."""
        self._checked_out.discard(seg_id)

    def delete(self, seg_id: int) -> None:
        """Forget a checked-out segment whose records are all delivered (or re-spooled)."""
        self._checked_out.discard(seg_id)
        self._remove_file(seg_id)
        self.stats.segments_deleted += 1

    def _remove_file(self, seg_id: int) -> None:
        self._total -= self._segments.pop(seg_id, 0)
        try:
            (self.dir / _name(seg_id)).unlink()
        except FileNotFoundError:
            pass

    def adopt(self, other: Spool) -> int:
        """Move every segment of ``other`` (nothing checked out) to the tail of this spool, in order."""
        moved = 0
        other._seal_active()
        for seg_id in sorted(other._segments):
            if self._active is not None and self._active_records > 0:
                self._seal_active()
            new_id = max(self._segments, default=_FIRST_ID - 1) + 1
            src, dst = other.dir / _name(seg_id), self.dir / _name(new_id)
            os.replace(src, dst)
            size = other._segments.pop(seg_id)
            other._total -= size
            self._segments[new_id] = size
            self._total += size
            moved += 1
        return moved

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._seal_active()
        finally:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)


def segment_files(directory: str | Path) -> list[Path]:
    """Segment files of a spool root (every slot, each in replay order) or of one slot."""
    root = Path(directory)
    slots = sorted(
        (p for p in root.glob("slot-*") if p.is_dir() and p.name[5:].isdigit()), key=lambda p: int(p.name[5:])
    )
    out: list[Path] = []
    for d in [root, *slots]:
        out.extend(sorted(d.glob("seg-*.twsp")))
        if d is not root and (d / "overflow").is_dir():  # a slot's overflow lane replays after it
            out.extend(segment_files(d / "overflow"))
    return out


def read_all(directory: str | Path) -> list[tuple[bytes, bytes]]:
    """Every valid record of a spool root or slot, in replay order per slot (for tooling and tests; no lock)."""
    out: list[tuple[bytes, bytes]] = []
    for p in segment_files(directory):
        records, _ = decode_segment(p.read_bytes())
        out.extend(records)
    return out


__all__ = ["MAGIC", "MAX_SLOTS", "Spool", "SpoolStats", "decode_segment", "encode_record", "read_all", "segment_files"]
