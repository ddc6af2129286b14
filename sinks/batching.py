"""The batching sink, runtime-agnostic: fed ``Message``s, it writes ClickHouse batches.

It knows nothing of Kafka: the Kafka runner (``kafka_sink.py``) feeds it polled messages and
commits what ``flush()`` returns; the embedded runtime feeds it in-process messages.

Guarantees
- Rows are buffered per table and inserted when a table reaches ``batch_rows`` or
  ``batch_bytes``, or when the oldest buffered message is ``batch_seconds`` old. Offsets are
  returned for commit only after every row up to them was accepted by ClickHouse.
- A failed insert is never skipped: the sealed batch stays at the head of the queue, keeps its
  ``insert_deduplication_token`` (a retry after an ambiguous failure is a no-op in ClickHouse,
  on the table and on the rollups fed by it), and ``flush()`` raises
  ``SinkBackpressureError(retry_after)`` with exponential backoff so the runtime pauses.
- Replays are exact. Every row carries its source (topic, partition, offset). After every fully
  accepted flush the sink records the offset up to which each source partition is stored
  (``sink_offsets``, table_name '*'): a replayed message at or below it is dropped before
  decoding. Above it, rows already in a table (a crash between the insert and that record) are
  recognised by ``max(src_offset)`` per table and ClickHouse partition: the Python path inserts
  one ClickHouse partition per insert (one atomic part), in offset order, so "offset <= that
  mark" means "stored". Both checks are plain SQL and behave the same on chdb and a server.
- One row per event_id in the event tables (``_event_ids``): rows whose event_id repeats in the
  batch, was inserted recently or is already in the table are dropped before each insert attempt
  (the same event produced twice at different offsets, e.g. an OTLP retry after a receiver restart).
- A message that cannot be decoded or mapped becomes a ``dead_letters`` row with the reason; a
  row ClickHouse cannot encode is isolated by splitting its batch and dead-lettered alone.
- Events-topic values are decoded by ClickHouse itself (``_avro_fast``) when the store can; a
  batch ClickHouse rejects falls back to the Python path. Validating, the batch is staged in a
  temporary table and the rules are applied as SQL (``_avro_checks``): rows the SQL flags are
  judged by the Python path (same verdicts, same reasons), the rest go in with one INSERT SELECT.
- Event limits (``tripwire.schemas.limits``, the processors' ``check_event`` with the same
  ``TRIPWIRE_LIMITS_*``): validating, an event over a limit is a ``validate`` dead letter (reason
  and bytes) and stays out of the raw tables, as the processors leave it out of the summaries.
  Trusted mode applies neither the model constraints nor the limits, on either path (so what is
  stored does not depend on the path): it stores what decodes, and the raw tables may then hold
  events the processors dead-lettered. Run it only behind producers you trust.
- One dead letter per failure: the processors' DLQ records of events-topic messages the sink
  dead-letters itself (``decode`` always, ``validate`` when validating; same message, same id) are
  not stored a second time.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from tripwire.schemas import (
    DeadLetter,
    DecodeError,
    EventBase,
    EventLimits,
    Topics,
    check_event,
    decode,
    default_limits,
)
from tripwire.schemas.records import DeadLetterStage
from tripwire.schemas.wire import avro_string, zigzag, zigzag_offset
from tripwire.schemas.wire import parse_single_object as parse_header
from tripwire.sinks._avro_checks import StagePlan, Unsupported, limit_params, stage_plan
from tripwire.sinks._avro_fast import AvroBranch, AvroPlans
from tripwire.sinks._batches import (
    AvroBuffer,
    Message,
    PendingBatch,
    RowBuffer,
    SinkStats,
    TopicPartition,
    batch_token,
    offset_ranges,
    range_token,
)
from tripwire.sinks._event_ids import (
    EVENT_ID_COLUMN,
    TS_START_COLUMN,
    EventIdGuard,
    avro_event_id_ts,
    micros,
    skip_plan,
)
from tripwire.sinks.config import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DEFAULT_BATCH_SECONDS
from tripwire.sinks.exceptions import RowDataError, RowMappingError, SinkBackpressureError, StoreError
from tripwire.sinks.rows import TABLES, dead_letter_row, map_record, topic_roles
from tripwire.sinks.store import Store

log = logging.getLogger(__name__)

__all__ = ["BatchingSink", "Message", "PendingBatch", "SinkStats", "batch_token"]

STAR = "*"  # sink_offsets.table_name / partition_id of the per-source-partition stored offset
_ROLE_TABLES = {
    "events": ("model_calls", "tool_calls", "run_events", "dead_letters"),
    "runs": ("run_summaries", "dead_letters"),
    "metrics": ("window_stats", "dead_letters"),
    "alerts": ("alerts", "dead_letters"),
    "killswitch": ("killswitch_audit", "dead_letters"),
    "dlq": ("dead_letters",),
}
# ClickHouse codes meaning "this data cannot be inserted" (retrying the same bytes cannot help)
_DATA_ERROR_CODES = frozenset({6, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 159, 1001})
_AVRO_ATTEMPTS = 5  # failures of one Avro batch for other reasons before the Python path takes it


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
        validate: bool = True,
        decoder: Callable[[bytes], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        limits: EventLimits | None = None,
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
        # validate=False: trusted decode (Avro types and enum symbols checked, the pydantic
        # constraints not re-run); events values are then decoded by ClickHouse when it can.
        self._decode = decoder or (decode if validate else partial(decode, validate=False))
        fast = decoder is None and store.supports_avro_insert and (not validate or store.supports_avro_staging)
        self._plans = AvroPlans(received=validate) if fast else None
        self._clock = clock
        self.limits = limits or default_limits()  # the processors' limits (TRIPWIRE_LIMITS_*)
        self._stage_plans: dict[str, StagePlan | None] = {}  # validating: branch -> its SQL checks
        self._staged: set[str] = set()  # staging tables created on this connection
        self._owner = uuid.uuid4().hex[:12]  # this sink's staging tables (a store may serve several sinks)
        self._limit_params = limit_params(self.limits)
        self._verdicts: dict[str, list[tuple[Any, ...]]] = {}  # batch token -> the dead letters of its flagged rows
        # Dead letters of the processors (dlq topic) for failures this sink records itself, from the
        # same message with the same id: the sink reads the events topic and dead-letters every
        # message that does not decode, and (validating) every event that breaks the contract or a
        # limit. Stored once, by the sink (one owner per topic and stage).
        self._validating = validate  # trusted mode applies neither the model constraints nor the limits
        own = ("decode", "validate") if validate else ("decode",)
        self._own_dead = {t: frozenset(own) for t, role in self.roles.items() if role == "events"}
        self.stats = SinkStats()
        self._buffers: dict[str, RowBuffer] = {}
        self._avro: dict[tuple[bytes, int], AvroBuffer] = {}
        self._pending: deque[PendingBatch] = deque()
        # A flush's dead letters, inserted after its data batches in one insert per ClickHouse partition:
        # the dead_letters offset mark (a replay drops what is at or below it) then never covers a dead
        # letter of the flush that is not stored yet, whatever order the batches found them in.
        self._late_dead: list[tuple[Any, ...]] = []
        self._marks: dict[tuple[str, str, int, str], int] = {}  # (table, topic, partition, pid) -> offset
        self._star: dict[TopicPartition, int] = {}  # stored up to this offset in every table
        self._in_tables: dict[TopicPartition, int] = {}  # highest offset found in any table at load
        self._loaded: set[TopicPartition] = set()
        self._seen: dict[TopicPartition, int] = {}  # highest offset added, not yet sealed
        self._sealed: dict[TopicPartition, int] = {}  # highest offset sealed, not yet committed
        self._unsaved_star: dict[TopicPartition, int] = {}
        self._oldest: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._ids = EventIdGuard(store)  # an event stored once even when it is produced twice
        self._skip_plans: dict[str, tuple[str, ...] | None] = {}  # Avro branch -> how to read id and ts_start

    @property
    def decodes_in_clickhouse(self) -> bool:
        return self._plans is not None

    # -- intake ----------------------------------------------------------------------------
    def add(self, msg: Message) -> None:
        """Take one message into the table buffers. Never raises for bad input; raises
        ``SinkBackpressureError`` (message not taken) when ClickHouse cannot be asked for the
        replay marks of a new partition."""
        tp = (msg.topic, msg.partition)
        if tp not in self._loaded:
            try:
                self._load_marks(msg.topic, msg.partition)
            except StoreError as e:  # nothing taken yet: the caller offers this message again later
                self._backoff("sink_offsets", e)
        stats = self.stats
        stats.messages += 1
        if stats.first_message_at is None:
            stats.first_message_at = self._clock()
        if self._oldest is None:
            self._oldest = self._clock()
        if msg.offset > self._seen.get(tp, -1):
            self._seen[tp] = msg.offset
        if msg.offset <= self._star.get(tp, -1):
            stats.deduplicated += 1
            return
        role = self.roles.get(msg.topic)
        if (
            self._plans is not None
            and role == "events"
            and msg.value is not None
            and msg.offset > self._in_tables.get(tp, -1)
            and self._add_avro(msg)
        ):
            return
        mapped = self._map(msg, role)
        if mapped is not None:
            self._buffer(msg, *mapped)

    def _add_avro(self, msg: Message) -> bool:
        assert self._plans is not None and msg.value is not None
        head = parse_header(msg.value)
        if head is None:
            return False
        fp, index, start = head
        branch = self._plans.branch(fp, index)
        # validating, a branch that cannot be staged takes the Python path; trusted, it is inserted directly
        if branch is None or (self._validating and self._stage_plan(branch) is None):
            return False
        buf = self._avro.get((fp, index))
        if buf is None:
            buf = self._avro[(fp, index)] = AvroBuffer(branch)
        buf.items.append((msg, start))
        buf.nbytes += len(msg.value) + 16
        tp = (msg.topic, msg.partition)
        r = buf.ranges.get(tp)
        if r is None:
            buf.ranges[tp] = [msg.offset, msg.offset]
        elif msg.offset > r[1]:
            r[1] = msg.offset
        return True

    def _stage_plan(self, branch: AvroBranch) -> StagePlan | None:
        """The staging SQL of a branch, None when it cannot be staged: validating, such a branch takes
        the Python path; trusted, its container is inserted directly (and the event ids are read in
        Python for the guard), as on a store without staging."""
        if branch.name not in self._stage_plans:
            plan = None
            if self.store.supports_avro_staging:
                try:
                    plan = stage_plan(branch, self._owner, checks=self._validating)
                except Unsupported as e:
                    log.info("not staged record=%s why=%s", branch.name, e)
            self._stage_plans[branch.name] = plan
        return self._stage_plans[branch.name]

    def _map(self, msg: Message, role: str | None) -> tuple[str, tuple[Any, ...]] | None:
        """(table, row) of one message through the Python decoder, or a dead letter; None = nothing to store."""
        if role is None:
            return self._dead(msg, f"topic {msg.topic!r} is not a tripwire topic", "UnknownTopic", "sink")
        if msg.value is None:
            if role == "killswitch":  # compaction tombstone: nothing to audit
                self.stats.tombstones += 1
                return None
            return self._dead(msg, "message has no value", "EmptyValue", "decode")
        try:
            record = self._decode(msg.value)
        except DecodeError as e:
            return self._dead(msg, e.reason, type(e).__name__, "decode")
        except Exception as e:  # a decoder bug must not stop the sink
            return self._dead(msg, f"{type(e).__name__}: {e}", type(e).__name__, "decode")
        if role == "events" and self._validating and isinstance(record, EventBase):
            received = msg.timestamp_ms / 1000 if msg.timestamp_ms else time.time()
            reason = check_event(record, received, self.limits)
            if reason is not None:  # the processors reject it too: it stays out of raw tables and summaries
                return self._dead(msg, reason, "LimitExceeded", "validate")
        owned = isinstance(record, DeadLetter) and record.stage in self._own_dead.get(record.source_topic, ())
        if owned and role == "dlq":
            self.stats.deduplicated += 1  # the sink dead-lettered that message itself (one owner)
            return None
        try:
            return map_record(role, record)
        except RowMappingError as e:
            return self._dead(msg, e.reason, "RowMappingError", "sink")

    def _buffer(self, msg: Message, table: str, row: tuple[Any, ...]) -> None:
        full = (*row, msg.topic, msg.partition, msg.offset)
        pid = TABLES[table].partition_id(full)
        # The offset marks say what is stored only for tables written one insert per ClickHouse partition
        # in offset order. An event table is not: the Avro path inserts one batch per writer record
        # (RunStarted, ApprovalDecision and RunFinished all go to run_events), so a crash between two of
        # them leaves a mark above rows never stored. Event rows are deduplicated by their event id instead
        # (``_event_ids``: the table is asked before every insert).
        if table not in EVENT_ID_COLUMN and msg.offset <= self._marks.get((table, msg.topic, msg.partition, pid), -1):
            self.stats.deduplicated += 1
            return
        buf = self._buffers.get(table)
        if buf is None:
            buf = self._buffers[table] = RowBuffer()
        buf.rows.append(full)
        buf.nbytes += len(msg.value or b"") + 64

    def _dead(self, msg: Message, reason: str, error_type: str, stage: DeadLetterStage) -> tuple[str, tuple[Any, ...]]:
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

    # -- replay marks ------------------------------------------------------------------------
    def preload(self, topic: str, partition: int) -> None:
        """Load the replay marks of a partition now (an embedded runtime does this at start, so no
        later ``add`` can raise); ``SinkBackpressureError`` when ClickHouse cannot be asked."""
        if (topic, partition) in self._loaded:
            return
        try:
            self._load_marks(topic, partition)
        except StoreError as e:
            self._backoff("sink_offsets", e)

    def _load_marks(self, topic: str, partition: int) -> None:
        tables = _ROLE_TABLES.get(self.roles.get(topic) or "", ("dead_letters",))
        parts = [
            f"SELECT '{t}' AS t, _partition_id AS pid, max(src_offset) AS m FROM {t} "
            "WHERE src_topic = {topic:String} AND src_partition = {partition:UInt32} GROUP BY pid"
            for t in tables
        ]
        parts.append(
            "SELECT table_name AS t, partition_id AS pid, max(max_offset) AS m FROM sink_offsets "
            "WHERE table_name = '*' AND src_topic = {topic:String} AND src_partition = {partition:UInt32} "
            "GROUP BY t, pid"
        )
        sql = "SELECT toString(t), toString(pid), max(m) FROM (" + " UNION ALL ".join(parts) + ") GROUP BY 1, 2"
        tp = (topic, partition)
        for t, pid, m in self.store.query(sql, {"topic": topic, "partition": partition}).rows:
            m = int(m)
            if t == STAR:
                self._star[tp] = max(self._star.get(tp, -1), m)
                continue
            key = (t, topic, partition, pid)
            self._marks[key] = max(self._marks.get(key, -1), m)
            self._in_tables[tp] = max(self._in_tables.get(tp, -1), m)
        self._loaded.add(tp)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop what is buffered and cached for partitions this instance no longer owns
        (uncommitted, so their next owner replays them and its marks drop duplicates)."""
        gone = set(partitions)
        if not gone:
            return
        for buf in self._buffers.values():
            buf.rows = [r for r in buf.rows if (r[-3], r[-2]) not in gone]
        self._late_dead = [r for r in self._late_dead if (r[-3], r[-2]) not in gone]
        for abuf in self._avro.values():
            abuf.items = [(m, s) for m, s in abuf.items if (m.topic, m.partition) not in gone]
        kept: deque[PendingBatch] = deque()
        for b in self._pending:
            if b.branch is not None and b.messages is not None:
                items = [(m, s) for m, s in b.messages if (m.topic, m.partition) not in gone]
                if items:
                    kept.append(self._avro_batch(b.branch, items))
                continue
            rows = [r for r in b.rows if (r[-3], r[-2]) not in gone]
            if rows:
                kept.append(self._batch(b.table, b.partition_id, rows))
        self._pending = kept
        for tp in gone:
            for d in (self._seen, self._sealed, self._star, self._in_tables, self._unsaved_star):
                d.pop(tp, None)
            self._loaded.discard(tp)
        self._marks = {k: v for k, v in self._marks.items() if (k[1], k[2]) not in gone}

    # -- flushing ----------------------------------------------------------------------------
    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    @property
    def buffered_rows(self) -> int:
        return sum(len(b.rows) for b in self._buffers.values()) + sum(len(b.items) for b in self._avro.values())

    def should_flush(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        if self._pending or self._late_dead or self._unsaved_star:
            return now >= self._retry_at
        for buf in self._buffers.values():
            if len(buf.rows) >= self.batch_rows or buf.nbytes >= self.batch_bytes:
                return True
        for abuf in self._avro.values():
            if len(abuf.items) >= self.batch_rows or abuf.nbytes >= self.batch_bytes:
                return True
        return self._oldest is not None and now - self._oldest >= self.batch_seconds

    def retry_in(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        return max(0.0, self._retry_at - now)

    def _batch(self, table: str, pid: str, rows: list[tuple[Any, ...]]) -> PendingBatch:
        ranges = offset_ranges((r[-3], r[-2], r[-1]) for r in rows)
        marks = {tp: hi for tp, (_lo, hi) in ranges.items()}
        return PendingBatch(table, pid, rows, range_token(table, pid, len(rows), ranges), marks)

    def _avro_batch(
        self,
        branch: AvroBranch,
        items: list[tuple[Message, int]],
        known: dict[TopicPartition, list[int]] | None = None,
    ) -> PendingBatch:
        ranges = (
            {tp: (lo, hi) for tp, (lo, hi) in known.items()}
            if known is not None
            else offset_ranges((m.topic, m.partition, m.offset) for m, _ in items)
        )
        marks = {tp: hi for tp, (_lo, hi) in ranges.items()}
        token = range_token(f"{branch.table}:{branch.name}", STAR, len(items), ranges)
        return PendingBatch(branch.table, STAR, [], token, marks, branch, items)

    def _seal(self) -> None:
        # Python-path rows first: in trusted mode the only event rows on it are replays below the
        # marks found at load, whose offsets precede every Avro-path row (per table, offset order).
        for table, buf in self._buffers.items():
            if buf.rows:
                self._seal_rows(table, buf.rows)
        self._buffers = {}
        for abuf in self._avro.values():
            if abuf.items:
                self._pending.append(self._avro_batch(abuf.branch, abuf.items, abuf.ranges))
        self._avro = {}
        self._sealed.update(self._seen)
        self._seen = {}
        self._oldest = None

    def _seal_rows(self, table: str, rows: list[tuple[Any, ...]], *, front: bool = False) -> None:
        if table == "dead_letters":
            self._late_dead.extend(rows)
            return
        batches = self._partition_batches(table, rows)
        if front:
            self._pending.extendleft(reversed(batches))
        else:
            self._pending.extend(batches)

    def _seal_dead(self) -> None:
        rows, self._late_dead = self._late_dead, []
        self._pending.extend(self._partition_batches("dead_letters", rows))

    def _partition_batches(self, table: str, rows: list[tuple[Any, ...]]) -> list[PendingBatch]:
        """One batch per ClickHouse partition of ``table`` (one insert, one atomic part each)."""
        spec = TABLES[table]
        by_pid: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_pid.setdefault(spec.partition_id(r), []).append(r)
        return [self._batch(table, pid, by_pid[pid]) for pid in sorted(by_pid)]

    def flush(self) -> dict[TopicPartition, int]:
        """Seal the buffers and insert every pending batch in order.

        Returns the offsets to commit (next offset to read per partition) once all rows up to
        them are stored; raises ``SinkBackpressureError`` when ClickHouse refused a batch (it
        stays pending; call again after ``retry_after``).
        """
        self._seal()
        while self._pending or self._late_dead:
            if not self._pending:  # the data batches are stored: now the flush's dead letters
                self._seal_dead()
            b = self._pending[0]
            staged = b.branch is not None and self._stage_plan(b.branch) is not None  # ids looked up in ClickHouse
            ids = [] if staged else self._drop_stored_events(b)
            dead: list[tuple[Any, ...]] = []
            if b.branch is not None:
                if b.messages and not self._insert_avro(b):
                    continue
                dead = self._verdicts.pop(b.token, [])
            elif b.rows:
                try:
                    self.store.insert(b.table, TABLES[b.table].insert_columns, b.rows, dedup_token=b.token)
                except RowDataError as e:
                    self._pending.popleft()
                    self._split(b, str(e))
                    continue
                except StoreError as e:
                    self._backoff(b.table, e)
            if ids:
                self._ids.stored(b.table, ids)
            self._pending.popleft()
            if dead:  # the flagged rows the Python path rejected: dead letters, after the data batches
                self._late_dead.extend(dead)
            n = len(b.messages) - len(dead) if b.messages is not None else len(b.rows)
            self.stats.rows_inserted += n
            self.stats.batches_inserted += 1
            for (topic, partition), off in b.marks.items():
                key = (b.table, topic, partition, b.partition_id)
                if off > self._marks.get(key, -1):
                    self._marks[key] = off
        for tp, off in self._sealed.items():
            if off > self._star.get(tp, -1):
                self._unsaved_star[tp] = off
        if self._unsaved_star:
            now = datetime.now(UTC)
            rows = [(STAR, t, p, STAR, off, now) for (t, p), off in sorted(self._unsaved_star.items())]
            try:
                self.store.insert(
                    "sink_offsets",
                    ("table_name", "src_topic", "src_partition", "partition_id", "max_offset", "updated_at"),
                    rows,
                )
            except StoreError as e:
                self._backoff("sink_offsets", e)
            self._star.update(self._unsaved_star)
            self._unsaved_star = {}
        self._failures = 0
        self._retry_at = 0.0
        commit = {tp: off + 1 for tp, off in self._sealed.items()}
        self._sealed = {}
        if commit:
            self.stats.commits += 1
        return commit

    def _drop_stored_events(self, b: PendingBatch) -> list[str | None]:
        """Drop the events of ``b`` whose event_id is already stored (``_event_ids``); the ids kept.
        Done before every attempt (a retry after an ambiguous failure finds its own rows and drops
        them). Raises ``SinkBackpressureError`` when the table cannot be asked."""
        col = EVENT_ID_COLUMN.get(b.table)
        if col is None:
            return []
        try:
            if b.messages is not None:
                assert b.branch is not None
                plan = self._skip_plans.get(b.branch.name, ())
                if plan == ():
                    plan = self._skip_plans[b.branch.name] = skip_plan(json.loads(b.branch.schema_json))
                read = [avro_event_id_ts(m.value, start, plan) for m, start in b.messages]
                ids = [i for i, _ in read]
                kept = self._ids.keep(b.table, list(zip(b.messages, ids, strict=True)), ids, [t for _, t in read])
                dropped = len(b.messages) - len(kept)
                b.messages = [item for item, _ in kept]
                kept_ids = [i for _, i in kept]
            else:
                tcol = TS_START_COLUMN[b.table]
                rows = self._ids.keep(b.table, b.rows, [r[col] for r in b.rows], [micros(r[tcol]) for r in b.rows])
                dropped = len(b.rows) - len(rows)
                b.rows = rows
                kept_ids = [r[col] for r in rows]
        except StoreError as e:
            self._backoff(b.table, e)
        if dropped:
            self.stats.deduplicated += dropped
            log.info("dropped already stored events table=%s count=%d", b.table, dropped)
        return kept_ids

    def _insert_avro(self, b: PendingBatch) -> bool:
        """Insert an Avro batch; False when it was handed to the Python path instead."""
        assert b.branch is not None and b.messages is not None
        branch = b.branch
        prefixes: dict[TopicPartition, bytes] = {}  # event_type? + src_topic + src_partition
        pieces: list[bytes | memoryview] = []
        append = pieces.append
        for m, start in b.messages:
            tp = (m.topic, m.partition)
            prefix = prefixes.get(tp)
            if prefix is None:
                prefix = prefixes[tp] = branch.suffix + avro_string(m.topic) + zigzag(m.partition)
            append(m.value[start:] if m.value is not None else b"")
            append(prefix)
            append(zigzag_offset(m.offset))
            if branch.received:
                append(zigzag(m.timestamp_ms * 1000 if m.timestamp_ms else int(time.time() * 1e6)))
        n = len(b.messages)
        try:
            if self._stage_plan(branch) is not None:
                self._insert_staged(b, branch.container(pieces, n))
                self.stats.batches_staged += 1
            else:
                self.store.insert_avro(b.table, branch.columns, branch.container(pieces, n), dedup_token=b.token)
            return True
        except StoreError as e:
            b.attempts += 1
            data_error = e.code in _DATA_ERROR_CODES
            if not data_error and b.attempts < _AVRO_ATTEMPTS:
                self._backoff(b.table, e)  # raises: retry the same container later
            if not data_error:
                self.stats.insert_failures += 1
            log.warning("ClickHouse did not take an Avro batch table=%s rows=%d: %s", b.table, n, e)
        self._pending.popleft()
        self._fallback(b)
        return False

    def _insert_staged(self, b: PendingBatch, container: bytes) -> None:
        """Stage the container, let the Python path judge the rows the SQL flags (validating; trusted,
        none is), drop the repeats of stored event ids, insert the others and the accepted ones in one
        INSERT SELECT. The verdicts are kept by batch token (a retry does not judge or count again);
        the dead letters are queued by ``flush``."""
        assert b.branch is not None and b.messages is not None
        plan = self._stage_plans[b.branch.name]
        assert plan is not None
        store = self.store
        if plan.stage not in self._staged:
            store.command(plan.create)
            self._staged.add(plan.stage)
        store.command(f"TRUNCATE TABLE {plan.stage}")
        try:
            store.stage_avro(plan.stage, container)
            review = [
                (str(topic), int(partition), int(offset), str(eid), bool(stored), bool(flagged))
                for topic, partition, offset, eid, stored, flagged in store.query(
                    plan.review_sql(b.table), self._limit_params
                ).rows
            ]
            dead = self._verdicts.get(b.token)
            if dead is None:
                dead = []
                flagged = [r for r in review if r[5]]
                if flagged:
                    self.stats.judged_in_python += len(flagged)
                    by_pos = {(m.topic, m.partition, m.offset): m for m, _ in b.messages}
                    for topic, partition, offset, *_ in flagged:
                        m = by_pos[(topic, partition, offset)]
                        mapped = self._map(m, "events")
                        if mapped is not None and mapped[0] == "dead_letters":
                            dead.append((*mapped[1], m.topic, m.partition, m.offset))
                self._verdicts[b.token] = dead
            dropped = self._drop_staged_events(b, plan, review, dead)
            excluded = [plan.row_key(r[-3], r[-2], r[-1]) for r in dead] + dropped
            params: dict[str, Any] = {"excluded": excluded} if excluded else {}
            select = plan.insert_select(bool(excluded))
            store.insert_select(b.table, b.branch.columns, select, params, dedup_token=b.token)
        finally:
            store.command(f"TRUNCATE TABLE {plan.stage}")

    def _drop_staged_events(
        self, b: PendingBatch, plan: StagePlan, review: list[tuple[Any, ...]], dead: list[tuple[Any, ...]]
    ) -> list[str]:
        """The event-id guard of a staged batch (``_drop_stored_events`` for the Python-read batches),
        from the rows of ``StagePlan.review_sql`` (every row whose id is stored or repeated in the batch
        is among them): of the rows to insert (not the dead letters), a row goes when its id is stored
        or occurred earlier in the batch (batch order is offset order within a partition). Those rows
        leave ``b`` and are returned as keys. The in-memory cache of recently stored ids is not needed
        here: the table is asked for every id."""
        assert b.messages is not None
        key = plan.row_key
        dead_keys = {key(r[-3], r[-2], r[-1]) for r in dead}
        seen: set[str] = set()
        dropped: list[str] = []
        for topic, partition, offset, eid, stored, _ in sorted(review):
            k = key(topic, partition, offset)
            if k in dead_keys:
                continue
            if stored or eid in seen:
                dropped.append(k)
            seen.add(eid)
        if not dropped:
            return []
        gone = set(dropped)
        b.messages = [(m, st) for m, st in b.messages if key(m.topic, m.partition, m.offset) not in gone]
        self.stats.deduplicated += len(dropped)
        log.info("dropped already stored events table=%s count=%d", b.table, len(dropped))
        return dropped

    def _fallback(self, b: PendingBatch) -> None:
        """Hand an Avro batch to the Python decoder. Rows ClickHouse may have stored already (a part
        written before the error) are dropped by the event-id guard before their insert; the offset
        marks cannot tell (other batches of the flush may have raised them above this batch's rows)."""
        assert b.messages is not None
        self.stats.avro_fallbacks += 1
        self._verdicts.pop(b.token, None)
        buffers: dict[str, list[tuple[Any, ...]]] = {}
        for m, _ in b.messages:
            mapped = self._map(m, "events")
            if mapped is None:
                continue
            table, row = mapped
            buffers.setdefault(table, []).append((*row, m.topic, m.partition, m.offset))
        for table in sorted(buffers, reverse=True):
            self._seal_rows(table, buffers[table], front=True)

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
            detail = f"row for {b.table} cannot be stored: {reason}; row={r!r}"[:2000]
            _, row = self._dead(msg, detail, "RowDataError", "sink")
            self._late_dead.append((*row, msg.topic, msg.partition, msg.offset))
            return
        mid = len(b.rows) // 2
        self._pending.appendleft(self._batch(b.table, b.partition_id, b.rows[mid:]))
        self._pending.appendleft(self._batch(b.table, b.partition_id, b.rows[:mid]))
