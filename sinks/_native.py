"""Native-format encoding shared by both backends.

clickhouse-connect's serializer turns Python rows into ClickHouse Native blocks; the server
backend sends them over HTTP with its reused insert contexts, the chdb backend feeds the same
bytes to ``send_insert(..., "Native")``. One encoder, so both backends see identical blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

try:  # the C reader when clickhouse-connect's extension is built, else the pure-Python one
    from clickhouse_connect.driverc.buffer import ResponseBuffer
except ImportError:  # pragma: no cover
    from clickhouse_connect.driver.buffer import ResponseBuffer  # type: ignore[assignment]
from clickhouse_connect.driver.query import QueryContext

_FORMAT_MARK = b"FORMAT Native\n"


class _OneChunk:
    def __init__(self, data: bytes) -> None:
        self.gen = iter((data,))  # the C ResponseBuffer reads ``gen`` directly

    def __iter__(self) -> _OneChunk:
        return self

    def __next__(self) -> bytes:
        return next(self.gen)

    def close(self) -> None:
        pass


def parse_native(data: bytes) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Column names and rows of a Native-format result, as clickhouse-connect returns them from a server."""
    if not data:
        return (), []
    res = NativeTransform.parse_response(ResponseBuffer(_OneChunk(data)), QueryContext())
    return tuple(res.column_names), [tuple(r) for r in res.result_rows]  # type: ignore[union-attr]


def column_types(type_names: Sequence[str]) -> list[Any]:
    return [get_from_name(t) for t in type_names]


def native_block(table: str, columns: Sequence[str], types: Sequence[Any], rows: Sequence[Sequence[Any]]) -> bytes:
    """The Native-format bytes of ``rows`` (without the INSERT statement clickhouse-connect prepends)."""
    ctx = InsertContext(table, list(columns), list(types), rows, compression=None, block_size=max(1, len(rows)))
    data = b"".join(NativeTransform.build_insert(ctx))
    if ctx.insert_exception is not None:
        raise ctx.insert_exception
    start = data.find(_FORMAT_MARK)
    return data[start + len(_FORMAT_MARK) :] if start >= 0 else data
