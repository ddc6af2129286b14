"""On-disk spool: append-only segments of CRC-checked records, replayed in order.

Layout: ``<dir>/seg-<id>.twsp``; a segment starts with ``TWSP\\x01`` and holds records framed as
``u32 length | u32 crc32(payload) | payload`` with ``payload = u16 key length | key | value``.
Segments are read lowest id first; records a previous process could not deliver are *prepended* as
a segment with a lower id, so the replay order stays the emit order (per run, per partition). A torn
tail (a crash mid-write) or a record whose CRC does not match is skipped and counted, never replayed.
The total size is capped; an append that would pass the cap is refused (the caller counts a drop).

*Marks.* A record can be marked *settled* (delivered, dropped for good, or copied into a newer
segment) in ``seg-<id>.ack`` next to its segment: little-endian u32 record indices, appended. Readers
skip marked records, so a process killed while a segment was being delivered replays only what was not
yet settled. Marks are written (not fsynced): a machine crash can only bring back settled records, i.e.
duplicates, never lose one.

*Live segments.* In the durable hand-off (see :mod:`tripwire.producers.delivery`) every record is
appended to a *live* segment before it is handed to Kafka; a live segment is never handed out for replay
by the process writing it (its records are already in flight), only by a later process, for whatever is
not marked. The active segment is written through a raw file descriptor: appends gather in memory and
go to the file in one ``write`` per :meth:`Spool.flush` (one ``fsync`` more per :meth:`Spool.sync`).

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

from tripwire.producers.errors import SpoolError

logger = logging.getLogger(__name__)

MAGIC = b"TWSP\x01"
_HDR = struct.Struct("<II")
_MARK = struct.Struct("<I")
_KEYLEN = struct.Struct("<H")
_FIRST_ID = 10**12  # room below for prepended segments
_MAX_RECORD = 64 * 1024 * 1024
MAX_SLOTS = 256


def _name(seg_id: int) -> str:
    return f"seg-{seg_id:016d}.twsp"


def encode_record(key: bytes, value: bytes) -> bytes:
    payload = _KEYLEN.pack(len(key)) + key + value
    return _HDR.pack(len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ack_name(seg_id: int) -> str:
    return f"seg-{seg_id:016d}.ack"


def decode_segment(data: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
    """The valid records of a segment's bytes and the number of corrupt/torn ones skipped."""
    indexed, bad = decode_segment_indexed(data)
    return [(k, v) for _, k, v in indexed], bad


def decode_marks(data: bytes) -> set[int]:
    """The record indices an ``.ack`` file marks settled (a torn last entry is ignored)."""
    n = len(data) // _MARK.size
    return set(struct.unpack_from(f"<{n}I", data, 0)) if n else set()


def decode_segment_indexed(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], int]:
    """Like :func:`decode_segment`, each record with its index (its position among the framed records)."""
    records: list[tuple[int, bytes, bytes]] = []
    bad = 0
    idx = -1
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
        idx += 1
        if zlib.crc32(payload) != crc or length < _KEYLEN.size:
            bad += 1
            continue
        (klen,) = _KEYLEN.unpack_from(payload, 0)
        if _KEYLEN.size + klen > length:
            bad += 1
            continue
        records.append((idx, payload[2 : 2 + klen], payload[2 + klen :]))
    return records, bad


def segment_records(path: Path) -> tuple[list[tuple[bytes, bytes]], int]:
    """The records of one segment file that are not marked settled, and the corrupt/torn ones skipped."""
    indexed, bad = decode_segment_indexed(path.read_bytes())
    try:
        marks = decode_marks(path.with_suffix(".ack").read_bytes())
    except FileNotFoundError:
        marks = set()
    return [(k, v) for i, k, v in indexed if i not in marks], bad


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
        self._segments: dict[int, int] = {}  # id -> size in bytes (closed and active, pending bytes included)
        self._total = 0  # running sum of segment sizes: read from other threads without iterating
        for p in self.dir.glob("seg-*.twsp"):
            try:
                size = p.stat().st_size
                self._segments[int(p.stem[4:])] = size
                self._total += size
            except (ValueError, OSError):
                logger.warning("ignoring unexpected spool file path=%s", p)
        self._active_id: int | None = None
        self._active_fd: int | None = None
        self._active_live = False
        self._active_records = 0
        self._pending = bytearray()  # appended, not yet written to the active segment's file
        self._unsynced = False  # appended since the last fsync
        self._live: set[int] = set()  # segments written by this process's live hand-off (never replayed here)
        self._ack_fds: dict[int, int] = {}
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
        """Whether some segment holds records not yet handed out for replay (live ones excepted)."""
        for seg_id in self._segments:
            if seg_id in self._checked_out or seg_id in self._live:
                continue
            if seg_id == self._active_id and self._active_records == 0:
                continue
            return True
        return False

    def is_empty(self) -> bool:
        """Nothing to replay and nothing checked out (live segments are their writer's business)."""
        return not self._checked_out and not self.has_unread()

    def is_active(self, seg_id: int) -> bool:
        return seg_id == self._active_id

    def segment_ids(self) -> list[int]:
        return sorted(self._segments)

    # -- writing -----------------------------------------------------------------------------------
    def _open_active(self, live: bool) -> None:
        seg_id = max(self._segments, default=_FIRST_ID - 1) + 1
        fd = os.open(self.dir / _name(seg_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        _fsync_dir(self.dir)  # the new file's name survives a machine crash too
        self._active_fd, self._active_id, self._active_records, self._active_live = fd, seg_id, 0, live
        self._pending += MAGIC
        self._segments[seg_id] = len(MAGIC)
        self._total += len(MAGIC)
        if live:
            self._live.add(seg_id)

    def _write_pending(self) -> None:
        if self._pending and self._active_fd is not None:
            view = memoryview(self._pending)
            done = 0
            try:
                while done < len(view):
                    done += os.write(self._active_fd, view[done:])
            finally:
                view.release()
                del self._pending[:done]

    def _seal_active(self) -> None:
        if self._active_fd is None:
            return
        fd, seg_id, records = self._active_fd, self._active_id, self._active_records
        try:
            self._write_pending()
            os.fsync(fd)
        finally:
            self._pending.clear()
            os.close(fd)
            self._active_fd, self._active_id, self._active_records, self._active_live = None, None, 0, False
        if records == 0 and seg_id is not None:
            # nothing was written: do not leave an empty segment behind
            self._remove_file(seg_id)

    def seal(self) -> None:
        """Close the active segment (written and fsynced); the next append opens a new one."""
        self._seal_active()

    def _prepare(self, rec_len: int, live: bool) -> bool:
        if self.total_bytes + rec_len > self.max_bytes:
            self.stats.refused += 1
            return False
        active = self._active_fd is not None
        if active and (self._active_live != live or self._segments[self._active_id] + rec_len > self.segment_bytes):  # type: ignore[index]
            self._seal_active()
        if self._active_fd is None:
            self._open_active(live)
        return True

    def append(self, key: bytes, value: bytes) -> bool:
        """Append one record to be replayed; False if the size cap (or an I/O error) refuses it."""
        return self._append(key, value, live=False) is not None

    def append_live(self, key: bytes, value: bytes) -> tuple[int, int] | None:
        """Append one record that its writer hands over itself: ``(segment, index)``, or None if refused."""
        return self._append(key, value, live=True)

    def _append(self, key: bytes, value: bytes, live: bool) -> tuple[int, int] | None:
        rec = encode_record(key, value)
        try:
            if not self._prepare(len(rec), live):
                return None
        except OSError as e:
            self.stats.refused += 1
            logger.error("spool write failed dir=%s error=%s", self.dir, e)
            return None
        seg_id = self._active_id
        assert seg_id is not None
        self._pending += rec
        self._unsynced = True
        idx = self._active_records
        self._segments[seg_id] += len(rec)
        self._total += len(rec)
        self._active_records = idx + 1
        self.stats.appended += 1
        if len(self._pending) >= 1 << 20:
            try:
                self._write_pending()
            except OSError as e:  # kept in memory: the next flush tries again
                logger.error("spool write failed dir=%s error=%s", self.dir, e)
        return seg_id, idx

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
        """Write what was appended to the file (one ``write``): it then survives the process dying."""
        try:
            self._write_pending()
        except OSError as e:
            logger.error("spool write failed dir=%s error=%s", self.dir, e)
            raise

    def sync(self) -> None:
        """:meth:`flush`, then ``fsync``: what was appended then survives the machine crashing."""
        if not self._unsynced:
            return
        self.flush()
        if self._active_fd is not None:
            os.fsync(self._active_fd)
        self._unsynced = False

    # -- marks -------------------------------------------------------------------------------------
    def mark(self, seg_id: int, indices: list[int]) -> None:
        """Mark records of a segment settled (one ``write``); readers and later processes skip them."""
        if not indices or seg_id not in self._segments:
            return
        fd = self._ack_fds.get(seg_id)
        if fd is None:
            fd = os.open(self.dir / _ack_name(seg_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._ack_fds[seg_id] = fd
        os.write(fd, struct.pack(f"<{len(indices)}I", *indices))

    def _marks(self, seg_id: int) -> set[int]:
        try:
            return decode_marks((self.dir / _ack_name(seg_id)).read_bytes())
        except FileNotFoundError:
            return set()

    # -- reading -----------------------------------------------------------------------------------
    def checkout(self) -> tuple[int, list[tuple[bytes, bytes]]] | None:
        """The lowest unread segment and its unsettled records (the active one is sealed first); None if none."""
        got = self.checkout_indexed()
        return None if got is None else (got[0], [(k, v) for _, k, v in got[1]])

    def checkout_indexed(self) -> tuple[int, list[tuple[int, bytes, bytes]]] | None:
        """Like :meth:`checkout`, each record with its index (to :meth:`mark` it)."""
        for seg_id in sorted(self._segments):
            if seg_id in self._checked_out or seg_id in self._live:
                continue
            if seg_id == self._active_id:
                if self._active_records == 0:
                    continue
                self._seal_active()
            try:
                data = (self.dir / _name(seg_id)).read_bytes()
                marks = self._marks(seg_id)
            except OSError as e:
                logger.error("spool read failed segment=%s error=%s", seg_id, e)
                self._checked_out.add(seg_id)
                return seg_id, []
            records, bad = decode_segment_indexed(data)
            if bad:
                self.stats.corrupt += bad
                logger.warning("spool segment had corrupt or torn records segment=%s skipped=%d", seg_id, bad)
            self._checked_out.add(seg_id)
            return seg_id, [r for r in records if r[0] not in marks] if marks else records
        return None

    def release(self, seg_id: int) -> None:
        """Return a checked-out segment unread (it will be handed out again, minus what is marked)."""
        self._checked_out.discard(seg_id)

    def delete(self, seg_id: int) -> None:
        """Forget a checked-out (or live, sealed) segment whose records are all settled."""
        self._checked_out.discard(seg_id)
        self._remove_file(seg_id)
        self.stats.segments_deleted += 1

    def _remove_file(self, seg_id: int) -> None:
        self._total -= self._segments.pop(seg_id, 0)
        self._live.discard(seg_id)
        fd = self._ack_fds.pop(seg_id, None)
        if fd is not None:
            os.close(fd)
        for name in (_name(seg_id), _ack_name(seg_id)):
            try:
                (self.dir / name).unlink()
            except FileNotFoundError:
                pass

    def adopt(self, other: Spool) -> int:
        """Move every segment of ``other`` (nothing checked out) to the tail of this spool, in order."""
        moved = 0
        other._seal_active()
        for seg_id in sorted(other._segments):
            if self._active_fd is not None and self._active_records > 0:
                self._seal_active()
            new_id = max(self._segments, default=_FIRST_ID - 1) + 1
            src, dst = other.dir / _name(seg_id), self.dir / _name(new_id)
            fd = other._ack_fds.pop(seg_id, None)
            if fd is not None:
                os.close(fd)
            if (other.dir / _ack_name(seg_id)).exists():
                os.replace(other.dir / _ack_name(seg_id), self.dir / _ack_name(new_id))
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
            for fd in self._ack_fds.values():
                os.close(fd)
            self._ack_fds.clear()
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)

    def abandon(self) -> None:
        """In a forked child: let go of the parent's spool without writing, unlocking or deleting anything.

        The descriptors are the child's copies (closing them leaves the parent's files, lock and offsets
        as they are); the bytes the parent had appended but not written yet are the parent's to write.
        """
        if self._closed:
            return
        self._closed = True
        self._pending = bytearray()
        for fd in [self._active_fd, *self._ack_fds.values(), self._lock_fd]:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._active_fd = None
        self._ack_fds.clear()


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
    """Every valid record not marked settled of a spool root or slot, in replay order per slot (tooling, tests).

    Takes no lock."""
    out: list[tuple[bytes, bytes]] = []
    for p in segment_files(directory):
        records, _ = segment_records(p)
        out.extend(records)
    return out


__all__ = [
    "MAGIC",
    "MAX_SLOTS",
    "Spool",
    "SpoolStats",
    "decode_marks",
    "decode_segment",
    "decode_segment_indexed",
    "encode_record",
    "read_all",
    "segment_files",
    "segment_records",
]
