"""The records the batching sink works with: buffers, sealed batches, tokens (messages are
:class:`tripwire.core.consumer.Message`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tripwire.core.consumer import Message
from tripwire.sinks._avro_fast import AvroBranch

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class SinkStats:
    messages: int = 0
    rows_inserted: int = 0
    batches_inserted: int = 0
    deduplicated: int = 0
    dead_lettered: int = 0
    tombstones: int = 0
    insert_failures: int = 0
    avro_fallbacks: int = 0
    judged_in_python: int = 0  # validating Avro path: rows the SQL checks flagged, judged by the Python path
    batches_staged: int = 0  # Avro batches staged in ClickHouse (checks when validating, event-id guard: SQL)
    commits: int = 0
    first_message_at: float | None = None  # clock() of the first message added


@dataclass(slots=True)
class RowBuffer:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    nbytes: int = 0


@dataclass(slots=True)
class AvroBuffer:
    branch: AvroBranch
    items: list[tuple[Message, int]] = field(default_factory=list)  # (message, body start)
    nbytes: int = 0
    ranges: dict[TopicPartition, list[int]] = field(default_factory=dict)  # [first, last] offset


@dataclass(slots=True)
class PendingBatch:
    """A sealed batch for one table; retried as is until accepted.

    Python path: ``rows`` of one ClickHouse partition. Avro path: the ``messages`` whose bodies
    ClickHouse decodes (``branch`` says how)."""

    table: str
    partition_id: str
    rows: list[tuple[Any, ...]]
    token: str
    marks: dict[TopicPartition, int]
    branch: AvroBranch | None = None
    messages: list[tuple[Message, int]] | None = None
    attempts: int = 0


def offset_ranges(items: Iterable[tuple[str, int, int]]) -> dict[TopicPartition, tuple[int, int]]:
    out: dict[TopicPartition, tuple[int, int]] = {}
    for topic, partition, off in items:
        tp = (topic, partition)
        lo_hi = out.get(tp)
        out[tp] = (off, off) if lo_hi is None else (min(lo_hi[0], off), max(lo_hi[1], off))
    return out


def range_token(table: str, partition_id: str, n: int, ranges: dict[TopicPartition, tuple[int, int]]) -> str:
    text = f"{table}|{partition_id}|{n}|" + ";".join(
        f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def batch_token(table: str, partition_id: str, rows: list[tuple[Any, ...]]) -> str:
    """``insert_deduplication_token``: the table, partition, row count and the source offset
    range of each (topic, partition) in the batch."""
    return range_token(table, partition_id, len(rows), offset_ranges((r[-3], r[-2], r[-1]) for r in rows))
