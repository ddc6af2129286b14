"""Mapping of decoded records to ClickHouse rows: which table, which columns, which partition.

Pure and runtime-agnostic (no Kafka, no ClickHouse): ``map_message`` turns one message of a
tripwire topic into rows, or into a ``dead_letters`` row saying why it could not be mapped.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tripwire.schemas import (
    Alert,
    ApprovalDecision,
    DeadLetter,
    KillSwitchCommand,
    ModelCall,
    RunFinished,
    RunStarted,
    RunSummary,
    ToolCall,
    Topics,
    WindowStats,
    dead_letter,
)
from tripwire.schemas.records import DeadLetterStage
from tripwire.sinks.exceptions import RowMappingError

SOURCE_COLUMNS = ("src_topic", "src_partition", "src_offset")

_BASE = (
    "event_id",
    "tenant",
    "agent_id",
    "agent_version",
    "workflow",
    "environment",
    "principal",
    "credential_fingerprint",
    "trace_id",
    "span_id",
    "parent_span_id",
    "run_id",
    "seq",
    "ts_start",
    "ts_end",
)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A sink table: its data columns (``SOURCE_COLUMNS`` follow them) and its partition time column.

    ``time_column`` mirrors ``PARTITION BY toYYYYMM(time_column)`` in the migrations (None = unpartitioned),
    so the sink knows each row's ClickHouse partition id (``_partition_id``) without asking.
    """

    name: str
    columns: tuple[str, ...]
    time_column: str | None

    @property
    def insert_columns(self) -> tuple[str, ...]:
        return self.columns + SOURCE_COLUMNS

    def partition_id(self, row: tuple[Any, ...]) -> str:
        if self.time_column is None:
            return "all"
        ts: datetime = row[self.columns.index(self.time_column)]
        return f"{ts.year:04d}{ts.month:02d}"


MODEL_CALLS = TableSpec(
    "model_calls",
    (
        *_BASE,
        "operation_name",
        "provider",
        "request_model",
        "response_model",
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_usd",
        "cost_source",
        "price_version",
        "status",
        "finish_reason",
        "error_type",
        "prompt",
        "completion",
    ),
    "ts_start",
)
TOOL_CALLS = TableSpec(
    "tool_calls",
    (
        *_BASE,
        "tool_name",
        "tool_call_id",
        "risk",
        "args",
        "args_hash",
        "status",
        "error_type",
        "idempotency_key",
        "approval_ref",
        "side_effect",
        "blocked_reason",
    ),
    "ts_start",
)
_RUN_EVENT_EXTRA = (
    "conversation_id",
    "parent_run_id",
    "max_steps",
    "max_tool_calls",
    "max_prompt_tokens",
    "max_completion_tokens",
    "max_cost_usd",
    "tool_name",
    "tool_call_id",
    "risk",
    "decision",
    "approver",
    "reason",
    "outcome",
    "error_type",
    "last_seq",
)
RUN_EVENTS = TableSpec("run_events", ("event_type", *_BASE, *_RUN_EVENT_EXTRA), "ts_start")
RUN_SUMMARIES = TableSpec("run_summaries", tuple(RunSummary.model_fields), None)
WINDOW_STATS = TableSpec("window_stats", tuple(WindowStats.model_fields), "window_start")
ALERTS = TableSpec("alerts", tuple(Alert.model_fields), "created_at")
KILLSWITCH_AUDIT = TableSpec("killswitch_audit", ("source", "actor", *KillSwitchCommand.model_fields), "issued_at")
DEAD_LETTERS = TableSpec("dead_letters", tuple(DeadLetter.model_fields), "failed_at")

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (MODEL_CALLS, TOOL_CALLS, RUN_EVENTS, RUN_SUMMARIES, WINDOW_STATS, ALERTS, KILLSWITCH_AUDIT, DEAD_LETTERS)
}

_RUN_EVENT_TYPES: dict[type, str] = {
    RunStarted: "run_started",
    ApprovalDecision: "approval_decision",
    RunFinished: "run_finished",
}


_GETTERS: dict[tuple[str, ...], tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}


def _attrs(record: Any, columns: tuple[str, ...]) -> tuple[Any, ...]:
    getters = _GETTERS.get(columns)
    if getters is None:
        getters = _GETTERS[columns] = (operator.itemgetter(*columns), operator.attrgetter(*columns))
    try:  # the fields of a model are its __dict__: ~10x cheaper than attribute lookups through the class
        return getters[0](record.__dict__)  # type: ignore[no-any-return]
    except KeyError:  # a column that is not a field (a property): the attributes
        return getters[1](record)  # type: ignore[no-any-return]


def _row_model_call(r: Any) -> tuple[str, tuple[Any, ...]]:
    return "model_calls", _attrs(r, MODEL_CALLS.columns)


def _row_tool_call(r: Any) -> tuple[str, tuple[Any, ...]]:
    return "tool_calls", _attrs(r, TOOL_CALLS.columns)


def _row_run_event(r: Any) -> tuple[str, tuple[Any, ...]]:
    get = r.__dict__.get  # the columns of the other run event types are NULL
    return "run_events", (_RUN_EVENT_TYPES[type(r)], *(get(c) for c in RUN_EVENTS.columns[1:]))


def _row_summary(r: Any) -> tuple[str, tuple[Any, ...]]:
    return "run_summaries", _attrs(r, RUN_SUMMARIES.columns)


def _row_window(r: Any) -> tuple[str, tuple[Any, ...]]:
    return "window_stats", _attrs(r, WINDOW_STATS.columns)


def _row_alert(r: Any) -> tuple[str, tuple[Any, ...]]:
    row = list(_attrs(r, ALERTS.columns))
    i = ALERTS.columns.index("agent_id")
    row[i] = row[i] or ""  # in the sorting key: '' = not agent-scoped
    return "alerts", tuple(row)


def _row_killswitch(r: Any) -> tuple[str, tuple[Any, ...]]:
    return "killswitch_audit", ("topic", r.issued_by, *_attrs(r, KILLSWITCH_AUDIT.columns[2:]))


def _row_dead_letter(r: Any) -> tuple[str, tuple[Any, ...]]:
    return "dead_letters", _attrs(r, DEAD_LETTERS.columns)


# topic role -> record type -> row builder
_MAPPERS: dict[str, dict[type, Callable[[Any], tuple[str, tuple[Any, ...]]]]] = {
    "events": {
        ModelCall: _row_model_call,
        ToolCall: _row_tool_call,
        RunStarted: _row_run_event,
        ApprovalDecision: _row_run_event,
        RunFinished: _row_run_event,
    },
    "runs": {RunSummary: _row_summary},
    "metrics": {WindowStats: _row_window},
    "alerts": {Alert: _row_alert},
    "killswitch": {KillSwitchCommand: _row_killswitch},
    "dlq": {DeadLetter: _row_dead_letter},
}


def topic_roles(topics: Topics) -> dict[str, str]:
    """topic name -> role (events, runs, metrics, alerts, killswitch, dlq)."""
    return {
        topics.events: "events",
        topics.runs: "runs",
        topics.metrics: "metrics",
        topics.alerts: "alerts",
        topics.killswitch: "killswitch",
        topics.dlq: "dlq",
    }


def map_record(role: str, record: Any) -> tuple[str, tuple[Any, ...]] | None:
    """(table, row) of a decoded record on a topic of ``role``; raises ``RowMappingError``."""
    mappers = _MAPPERS.get(role)
    if mappers is None:
        raise RowMappingError(f"no table for topic role {role!r}")
    fn = mappers.get(type(record))
    if fn is None:
        raise RowMappingError(f"unexpected record type {type(record).__name__} on the {role} topic")
    return fn(record)


def dead_letter_row(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    reason: str,
    error_type: str,
    stage: DeadLetterStage,
    timestamp_ms: int | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """A ``dead_letters`` row for a message the sink could not store, built by the one dead-letter
    builder (:func:`tripwire.schemas.dead_letter`); ``failed_at`` is the message timestamp when known, so
    a replay produces the identical row."""
    failed_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC) if timestamp_ms else None
    dl = dead_letter(topic, partition, offset, key, value, stage=stage, reason=reason, error_type=error_type,
                     failed_at=failed_at)  # fmt: skip
    return _row_dead_letter(dl)
