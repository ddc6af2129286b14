"""The by-agent / by-credential records written before partials (``partials.py``): forwarded events,
alone or batched per key. The runtime still reads them, so records in flight across an upgrade
are processed; nothing writes them any more (``pack_records`` is kept for the tests of the format).

    b"TWB\\x01" | count (uint32 BE) | (length (uint32 BE) | event bytes) * count

Order is kept. A value without the magic is a single event.
"""

from __future__ import annotations

import struct

MAGIC = b"TWB\x01"
_U32 = struct.Struct(">I")


class BatchError(ValueError):
    """A forwarded record that is not a well-formed batch."""


MAX_RECORD_BYTES = 256 * 1024


def pack_records(values: list[bytes], limit: int = MAX_RECORD_BYTES) -> list[bytes]:
    """``values`` packed into as few records as keep each under ``limit`` bytes (an event larger
    than that goes alone)."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 8
    for v in values:
        if chunk and size + 4 + len(v) > limit:
            out.append(pack_events(chunk))
            chunk, size = [], 8
        chunk.append(v)
        size += 4 + len(v)
    if chunk:
        out.append(pack_events(chunk))
    return out


def pack_events(values: list[bytes]) -> bytes:
    parts = [MAGIC, _U32.pack(len(values))]
    for v in values:
        parts.append(_U32.pack(len(v)))
        parts.append(v)
    return b"".join(parts)


def unpack_events(data: bytes) -> list[bytes]:
    """The events of a forwarded record (one for a value written before batching)."""
    if not data.startswith(MAGIC):
        return [data]
    size = len(data)
    if size < 8:
        raise BatchError("truncated batch header")
    (count,) = _U32.unpack_from(data, 4)
    out, pos = [], 8
    for i in range(count):
        if pos + 4 > size:
            raise BatchError(f"truncated batch: event {i} of {count} has no length")
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + n > size:
            raise BatchError(f"truncated batch: event {i} of {count} needs {n} bytes, {size - pos} left")
        out.append(data[pos : pos + n])
        pos += n
    if pos != size:
        raise BatchError(f"{size - pos} bytes after the {count} events of a batch")
    return out
