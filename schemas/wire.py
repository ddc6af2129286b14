"""Avro wire primitives: the one home of framing constants and the varint / zig-zag code.

Used by the contract codec (:mod:`tripwire.schemas.codec`), the SDK's hot-path encoder and Confluent
framing header, and the sink's fast path that hands Avro bodies to ClickHouse. Everything here follows
the Avro 1.12 specification:

- single-object encoding: ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
  schema + the binary body;
- Confluent wire format: magic byte ``00`` + the 4-byte big-endian schema id + the binary body;
- ``int``/``long``: zig-zag, then unsigned LEB128 ("varint"); strings and bytes: a ``long`` length
  then the bytes.
"""

from __future__ import annotations

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
FINGERPRINT_LEN = 8
HEADER_LEN = len(SINGLE_OBJECT_MAGIC) + FINGERPRINT_LEN  # single-object header, before the body
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_LEN = 5  # magic + 4-byte schema id

_TABLE_BITS = 14
_TABLE_SIZE = 1 << _TABLE_BITS


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


VARINT_TABLE: list[bytes] = [_varint_slow(i) for i in range(_TABLE_SIZE)]
"""``VARINT_TABLE[n]`` is the varint of ``n`` for ``n < 16384``: one lookup for small lengths and indexes."""
# 14-bit chunks as two continuation bytes each: big numbers (timestamps) in 2-3 table lookups
_CONT = [bytes(((i & 0x7F) | 0x80, ((i >> 7) & 0x7F) | 0x80)) for i in range(_TABLE_SIZE)]


def varint(n: int) -> bytes:
    """Unsigned LEB128 (the Avro varint) of ``n >= 0``."""
    if n < _TABLE_SIZE:
        return VARINT_TABLE[n]
    parts = []
    while n >= _TABLE_SIZE:
        parts.append(_CONT[n & 0x3FFF])
        n >>= 14
    parts.append(VARINT_TABLE[n])
    return b"".join(parts)


def zigzag(n: int) -> bytes:
    """Avro ``int``/``long`` encoding of ``n`` (64-bit)."""
    z = (n << 1) ^ (n >> 63)
    return VARINT_TABLE[z] if z < _TABLE_SIZE else varint(z)


def zigzag_offset(n: int) -> bytes:
    """``zigzag`` for the non-negative ints of a hot path (Kafka offsets), unrolled for <= 4 bytes."""
    n <<= 1
    if n < _TABLE_SIZE:
        return VARINT_TABLE[n]
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, (n >> 14) & 0x7F | 0x80, n >> 21))
    return zigzag(n >> 1)


def avro_string(s: str) -> bytes:
    """Avro ``string`` encoding: the UTF-8 length as a ``long``, then the bytes."""
    b = s.encode()
    return zigzag(len(b)) + b


def read_long(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(the zig-zag ``long`` at ``pos``, the position after it), or None if it does not end within
    10 bytes or before the end of ``data``."""
    shift = acc = 0
    for i in range(pos, min(len(data), pos + 10)):
        b = data[i]
        acc |= (b & 0x7F) << shift
        if not b & 0x80:
            return (acc >> 1) ^ -(acc & 1), i + 1
        shift += 7
    return None


def parse_single_object(value: bytes) -> tuple[bytes, int, int] | None:
    """(writer fingerprint, union branch index, body start) of a single-object message whose body starts
    with a one-byte union branch index, or None for anything else (wrong marker, too short, a multi-byte
    index)."""
    if len(value) <= HEADER_LEN or value[0] != 0xC3 or value[1] != 0x01:
        return None
    b = value[HEADER_LEN]
    if b >= 0x80:  # multi-byte branch index: not one of ours
        return None
    return value[2:HEADER_LEN], (b >> 1) ^ -(b & 1), HEADER_LEN + 1
