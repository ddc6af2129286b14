"""The batching sink, runtime-agnostic: fed ``Message``s, it writes ClickHouse batches.

It knows nothing of Kafka: the Kafka runner (``kafka_sink.py``) feeds it polled messages and
commits what ``flush()`` returns; the embedded runtime feeds it in-process messages.

Guarantees
- Rows are buffered per table and inserted per (table, ClickHouse partition) when a table
  reaches ``batch_rows`` or ``batch_bytes``, or when the oldest buffered message is
  ``batch_seconds`` old. Offsets are returned for commit only after every row up to them was
  accepted by ClickHouse.
- A failed insert is never skipped: the sealed batch stays at the head of the queue, keeps its
  ``insert_deduplication_token`` (so a retry after an ambiguous failure is a no-op in
  ClickHouse), and ``flush()`` raises ``SinkBackpressureError(retry_after)`` with exponential
  backoff so the runtime pauses its partitions.
- Replays are exact: every row carries its source (topic, partition, offset); per
  (table, topic, partition, ClickHouse partition) the sink loads the highest stored offset
  (``max(src_offset)`` of the table and ``sink_offsets``) and drops rows at or below it.
  Inserts per key are atomic (one part each) and in offset order, so "offset <= high-water
  mark" means "already stored". Both mechanisms are plain SQL and behave the same on chdb and
  on a server.
- A message that cannot be decoded or mapped becomes a ``dead_letters`` row with the reason;
  a row ClickHouse cannot encode is isolated by splitting its batch and dead-lettered alone.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tripwire.schemas import DecodeError, Topics, decode
from tripwire.sinks.config import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DEFAULT_BATCH_SECONDS
from tripwire.sinks.exceptions import RowDataError, RowMappingError, SinkBackpressureError, StoreError
from tripwire.sinks.rows import TABLES, dead_letter_row, map_record, topic_roles
from tripwire.sinks.store import Store

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
_ROLE_TABLES = {
    "events": ("model_calls", "tool_calls", "run_events", "dead_letters"),
    "runs": ("run_summaries", "dead_letters"),
    "metrics": ("window_stats", "dead_letters"),
    "alerts": ("alerts", "dead_letters"),
    "killswitch": ("killswitch_audit", "dead_letters"),
    "dlq": ("dead_letters",),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One record of a topic, as any runtime sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(slots=True)
class SinkStats:
    messages: int = 0
    rows_inserted: int = 0
    batches_inserted: int = 0
    deduplicated: int = 0
    dead_lettered: int = 0
    tombstones: int = 0
    insert_failures: int = 0
    commits: int = 0


@dataclass(slots=True)
class _Buffer:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    nbytes: int = 0


@dataclass(slots=True)
class PendingBatch:
    """A sealed batch for one (table, ClickHouse partition); retried as is until accepted."""

    table: str
    partition_id: str
    rows: list[tuple[Any, ...]]
    token: str
    marks: dict[TopicPartition, int]


def _marks_of(rows: Iterable[tuple[Any, ...]]) -> dict[TopicPartition, tuple[int, int]]:
    out: dict[TopicPartition, tuple[int, int]] = {}
    for r in rows:
        tp = (r[-3], r[-2])
        off = r[-1]
        lo_hi = out.get(tp)
        out[tp] = (off, off) if lo_hi is None else (min(lo_hi[0], off), max(lo_hi[1], off))
    return out


def batch_token(table: str, partition_id: str, rows: list[tuple[Any, ...]]) -> str:
    """``insert_deduplication_token``: the table, partition and the source offset range of each
    (topic, partition) in the batch, plus the row count."""
    ranges = sorted(_marks_of(rows).items())
    text = f"{table}|{partition_id}|{len(rows)}|" + ";".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in ranges)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class BatchingSink:
    """Decode, map, batch and insert messages of the tripwire topics into a ``Store``."""

    def __init__(
        self,
        store: Store,
        topics: Topics,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        batch_seconds: float = DEFAULT_BATCH_SECONDS,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 30.0,
        decoder: Callable[[bytes], Any] = decode,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_rows < 1 or batch_bytes < 1 or batch_seconds <= 0:
            raise ValueError("batch_rows, batch_bytes and batch_seconds must be positive")
        self.store = store
        self.roles = topic_roles(topics)
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.batch_seconds = batch_seconds
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._decode = decoder
        self._clock = clock
        self.stats = SinkStats()
        self._buffers: dict[str, _Buffer] = {}
        self._pending: deque[PendingBatch] = deque()
        self._marks: dict[tuple[str, str, int, str], int] = {}  # (table, topic, partition, pid) -> offset
        self._loaded: set[TopicPartition] = set()
        self._seen: dict[TopicPartition, int] = {}  # highest offset added, not yet sealed
        self._sealed: dict[TopicPartition, int] = {}  # highest offset sealed, not yet committed
        self._unsaved_marks: dict[tuple[str, str, int, str], int] = {}
        self._oldest: float | None = None
        self._failures = 0
        self._retry_at = 0.0

    # -- intake ----------------------------------------------------------------------------
    def add(self, msg: Message) -> None:
        """Decode and map one message into the table buffers. Never raises for bad input."""
        tp = (msg.topic, msg.partition)
        if tp not in self._loaded:
            self._load_marks(msg.topic, msg.partition)
        self.stats.messages += 1
        role = self.roles.get(msg.topic)
        mapped: tuple[str, tuple[Any, ...]] | None
        if role is None:
            mapped = self._dead(msg, f"topic {msg.topic!r} is not a tripwire topic", "UnknownTopic", "sink")
        elif msg.value is None:
            if role == "killswitch":  # compaction tombstone: nothing to audit
                self.stats.tombstones += 1
                mapped = None
            else:
                mapped = self._dead(msg, "message has no value", "EmptyValue", "decode")
        else:
            try:
                record = self._decode(msg.value)
            except DecodeError as e:
                mapped = self._dead(msg, e.reason, type(e).__name__, "decode")
            except Exception as e:  # a decoder bug must not stop the sink
                mapped = self._dead(msg, f"{type(e).__name__}: {e}", type(e).__name__, "decode")
            else:
                try:
                    mapped = map_record(role, record)
                except RowMappingError as e:
                    mapped = self._dead(msg, e.reason, "RowMappingError", "sink")
        if mapped is not None:
            table, row = mapped
            full = (*row, msg.topic, msg.partition, msg.offset)
            pid = TABLES[table].partition_id(full)
            if msg.offset <= self._marks.get((table, msg.topic, msg.partition, pid), -1):
                self.stats.deduplicated += 1
            else:
                buf = self._buffers.get(table)
                if buf is None:
                    buf = self._buffers[table] = _Buffer()
                buf.rows.append(full)
                buf.nbytes += len(msg.value or b"") + 64
        prev = self._seen.get(tp, -1)
        if msg.offset > prev:
            self._seen[tp] = msg.offset
        if self._oldest is None:
            self._oldest = self._clock()

    def _dead(self, msg: Message, reason: str, error_type: str, stage: str) -> tuple[str, tuple[Any, ...]]:
        self.stats.dead_lettered += 1
        log.warning(
            "dead letter topic=%s partition=%d offset=%d stage=%s error_type=%s",
            msg.topic,
            msg.partition,
            msg.offset,
            stage,
            error_type,
        )
        return dead_letter_row(
            msg.topic,
            msg.partition,
            msg.offset,
            msg.key,
            msg.value,
            reason=reason,
            error_type=error_type,
            stage=stage,
            timestamp_ms=msg.timestamp_ms,
        )

    # -- replay high-water marks ------------------------------------------------------------
    def _load_marks(self, topic: str, partition: int) -> None:
        role = self.roles.get(topic)
        tables = _ROLE_TABLES.get(role or "", ("dead_letters",))
        parts = [
            f"SELECT '{t}' AS t, _partition_id AS pid, max(src_offset) AS m FROM {t} "
            "WHERE src_topic = {topic:String} AND src_partition = {partition:UInt32} GROUP BY pid"
            for t in tables
        ]
        parts.append(
            "SELECT table_name AS t, partition_id AS pid, max(max_offset) AS m FROM sink_offsets "
            "WHERE src_topic = {topic:String} AND src_partition = {partition:UInt32} GROUP BY t, pid"
        )
        sql = "SELECT toString(t), toString(pid), max(m) FROM (" + " UNION ALL ".join(parts) + ") GROUP BY 1, 2"
        res = self.store.query(sql, {"topic": topic, "partition": partition})
        for t, pid, m in res.rows:
            key = (t, topic, partition, pid)
            if int(m) > self._marks.get(key, -1):
                self._marks[key] = int(m)
        self._loaded.add((topic, partition))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop what is buffered and cached for partitions this instance no longer owns
        (uncommitted, so their next owner replays them; its high-water marks drop duplicates)."""
        gone = set(partitions)
        if not gone:
            return
        for buf in self._buffers.values():
            buf.rows = [r for r in buf.rows if (r[-3], r[-2]) not in gone]
        kept: deque[PendingBatch] = deque()
        for b in self._pending:
            rows = [r for r in b.rows if (r[-3], r[-2]) not in gone]
            if rows:
                kept.append(self._batch(b.table, b.partition_id, rows))
        self._pending = kept
        for tp in gone:
            self._seen.pop(tp, None)
            self._sealed.pop(tp, None)
            self._loaded.discard(tp)
        self._marks = {k: v for k, v in self._marks.items() if (k[1], k[2]) not in gone}

    # -- flushing ----------------------------------------------------------------------------
    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    @property
    def buffered_rows(self) -> int:
        return sum(len(b.rows) for b in self._buffers.values())

    def should_flush(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        if self._pending or self._unsaved_marks:
            return now >= self._retry_at
        for buf in self._buffers.values():
            if len(buf.rows) >= self.batch_rows or buf.nbytes >= self.batch_bytes:
                return True
        return self._oldest is not None and now - self._oldest >= self.batch_seconds

    def retry_in(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        return max(0.0, self._retry_at - now)

    def _batch(self, table: str, pid: str, rows: list[tuple[Any, ...]]) -> PendingBatch:
        marks = {tp: hi for tp, (_lo, hi) in _marks_of(rows).items()}
        return PendingBatch(table, pid, rows, batch_token(table, pid, rows), marks)

    def _seal(self) -> None:
        for table, buf in self._buffers.items():
            if not buf.rows:
                continue
            spec = TABLES[table]
            by_pid: dict[str, list[tuple[Any, ...]]] = {}
            if spec.time_column is None:
                by_pid["all"] = buf.rows
            else:
                i = spec.columns.index(spec.time_column)
                for r in buf.rows:
                    ts = r[i]
                    by_pid.setdefault(f"{ts.year:04d}{ts.month:02d}", []).append(r)
            for pid in sorted(by_pid):
                self._pending.append(self._batch(table, pid, by_pid[pid]))
        self._buffers = {}
        self._sealed.update(self._seen)
        self._seen = {}
        self._oldest = None

    def flush(self) -> dict[TopicPartition, int]:
        """Seal the buffers and insert every pending batch in order.

        Returns the offsets to commit (next offset to read per partition) once all rows up to
        them are stored; raises ``SinkBackpressureError`` when ClickHouse refused a batch (it
        stays pending; call again after ``retry_after``).
        """
        self._seal()
        while self._pending:
            b = self._pending[0]
            try:
                self.store.insert(b.table, TABLES[b.table].insert_columns, b.rows, dedup_token=b.token)
            except RowDataError as e:
                self._pending.popleft()
                self._split(b, str(e))
                continue
            except StoreError as e:
                self._backoff(b.table, e)
            self._pending.popleft()
            self.stats.rows_inserted += len(b.rows)
            self.stats.batches_inserted += 1
            for (topic, partition), off in b.marks.items():
                key = (b.table, topic, partition, b.partition_id)
                if off > self._marks.get(key, -1):
                    self._marks[key] = off
                if off > self._unsaved_marks.get(key, -1):
                    self._unsaved_marks[key] = off
        if self._unsaved_marks:
            now = datetime.now(UTC)
            rows = [(t, top, p, pid, off, now) for (t, top, p, pid), off in sorted(self._unsaved_marks.items())]
            try:
                self.store.insert(
                    "sink_offsets",
                    ("table_name", "src_topic", "src_partition", "partition_id", "max_offset", "updated_at"),
                    rows,
                )
            except StoreError as e:
                self._backoff("sink_offsets", e)
            self._unsaved_marks = {}
        self._failures = 0
        self._retry_at = 0.0
        commit = {tp: off + 1 for tp, off in self._sealed.items()}
        self._sealed = {}
        if commit:
            self.stats.commits += 1
        return commit

    def _backoff(self, table: str, e: Exception) -> None:
        self._failures += 1
        self.stats.insert_failures += 1
        retry_after = min(self.retry_max_s, self.retry_initial_s * 2 ** (self._failures - 1))
        self._retry_at = self._clock() + retry_after
        log.warning(
            "insert failed table=%s attempt=%d retry_after=%.2f error=%s", table, self._failures, retry_after, e
        )
        raise SinkBackpressureError(retry_after, table=table, cause=str(e)) from e

    def _split(self, b: PendingBatch, reason: str) -> None:
        """Isolate rows ClickHouse cannot encode: halve the batch; a single bad row is dead-lettered."""
        if len(b.rows) == 1:
            r = b.rows[0]
            msg = Message(r[-3], r[-2], r[-1], None, None)
            table, row = self._dead(
                msg, f"row for {b.table} cannot be stored: {reason}; row={r!r}"[:2000], "RowDataError", "sink"
            )
            full = (*row, msg.topic, msg.partition, msg.offset)
            self._pending.appendleft(self._batch(table, TABLES[table].partition_id(full), [full]))
            return
        mid = len(b.rows) // 2
        self._pending.appendleft(self._batch(b.table, b.partition_id, b.rows[mid:]))
        self._pending.appendleft(self._batch(b.table, b.partition_id, b.rows[:mid]))
