"""Downstream records (not events): run summaries, window statistics, alerts, kill-switch
commands and dead letters. Each mirrors its ``avro/v*/<name>.avsc`` file."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from tripwire.schemas._types import (
    INT32_MAX,
    INT64_MAX,
    MODEL_CONFIG,
    Count,
    NonEmpty,
    NonNegFloat,
    Pct,
    Usd,
    UtcDatetime,
)
from tripwire.schemas.enums import KillSwitchAction, Risk, Severity

RunOutcome = Literal["success", "failure", "escalated", "aborted", "killed", "timed_out", "running"]
WindowKind = Literal["model", "tool"]
AlertStatus = Literal["firing", "resolved"]
DeadLetterStage = Literal["decode", "validate", "process", "sink", "notify"]


class _Record(BaseModel):
    model_config = MODEL_CONFIG
    SCHEMA_NAME: ClassVar[str] = ""
    AVRO_NAME: ClassVar[str] = ""


class RunSummary(_Record):
    SCHEMA_NAME: ClassVar[str] = "run_summary"
    AVRO_NAME: ClassVar[str] = "tripwire.runs.RunSummary"

    run_id: NonEmpty
    tenant: str
    agent_id: str
    agent_version: str
    workflow: str
    environment: str
    principal: str | None = None
    trace_id: str
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    duration_ms: NonNegFloat | None = None
    outcome: RunOutcome
    cost_usd: Usd = 0.0
    cost_by_model: dict[str, Usd] = Field(default_factory=dict)
    cost_input_usd: Usd = 0.0
    cost_cache_read_usd: Usd = 0.0
    cost_cache_write_usd: Usd = 0.0
    cost_output_usd: Usd = 0.0
    cost_reasoning_usd: Usd = 0.0
    cost_unknown_calls: Count = 0
    input_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    output_tokens: Count = 0
    reasoning_tokens: Count = 0
    steps: Count = 0
    model_calls: Count = 0
    tool_calls: Count = 0
    errors: Count = 0
    blocked_calls: Count = 0
    approvals: Count = 0
    denials: Count = 0
    budget_cost_pct: Pct | None = None
    budget_steps_pct: Pct | None = None
    budget_tool_calls_pct: Pct | None = None
    budget_prompt_tokens_pct: Pct | None = None
    budget_completion_tokens_pct: Pct | None = None
    events_seen: Count = 0
    missing_seqs: list[Count] = Field(default_factory=list)
    seq_gaps: Count = 0
    missing_seq_count: Count = 0
    version: Count
    emitted_at: UtcDatetime

    @model_validator(mode="after")
    def _times(self) -> RunSummary:
        if self.started_at is not None and self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class WindowStats(_Record):
    SCHEMA_NAME: ClassVar[str] = "window_stats"
    AVRO_NAME: ClassVar[str] = "tripwire.metrics.WindowStats"

    tenant: str
    agent_id: str
    agent_version: str
    kind: WindowKind
    name: str
    model: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    count: Count = 0
    errors: Count = 0
    cost_usd: Usd = 0.0
    p50_ms: Usd = 0.0
    p95_ms: Usd = 0.0
    p99_ms: Usd = 0.0
    min_ms: Usd = 0.0
    max_ms: Usd = 0.0
    sum_ms: Usd = 0.0
    sketch: bytes = b""
    emitted_at: UtcDatetime

    @model_validator(mode="after")
    def _window(self) -> WindowStats:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if self.errors > self.count:
            raise ValueError(f"errors ({self.errors}) exceed count ({self.count})")
        return self


class Alert(_Record):
    SCHEMA_NAME: ClassVar[str] = "alert"
    AVRO_NAME: ClassVar[str] = "tripwire.alerts.Alert"

    alert_id: NonEmpty
    incident_id: NonEmpty
    kind: NonEmpty
    severity: Severity
    scope: NonEmpty
    tenant: str
    agent_id: str | None = None
    agent_version: str | None = None
    tool_name: str | None = None
    run_id: str | None = None
    credential_fingerprint: str | None = None
    observed: float
    threshold: float
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    count: Annotated[int, Field(ge=1, le=INT64_MAX)] = 1
    evidence_event_ids: list[str] = Field(default_factory=list)
    evidence_trace_ids: list[str] = Field(default_factory=list)
    summary: str
    status: AlertStatus
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @model_validator(mode="after")
    def _times(self) -> Alert:
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        if self.window_start is not None and self.window_end is not None and self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class KillSwitchCommand(_Record):
    SCHEMA_NAME: ClassVar[str] = "kill_switch_command"
    AVRO_NAME: ClassVar[str] = "tripwire.killswitch.KillSwitchCommand"

    command_id: NonEmpty
    scope: NonEmpty
    action: KillSwitchAction
    min_risk: Risk | None = None
    throttle_per_minute: Count | None = None
    issued_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    reason: str
    alert_id: str | None = None
    issued_by: NonEmpty
    nonce: NonEmpty
    key_id: str | None = None
    signature: bytes | None = None

    @model_validator(mode="after")
    def _action_args(self) -> KillSwitchCommand:
        if self.action is KillSwitchAction.THROTTLE and self.throttle_per_minute is None:
            raise ValueError("throttle needs throttle_per_minute")
        if self.expires_at is not None and self.expires_at < self.issued_at:
            raise ValueError("expires_at is before issued_at")
        return self


class DeadLetter(_Record):
    SCHEMA_NAME: ClassVar[str] = "dead_letter"
    AVRO_NAME: ClassVar[str] = "tripwire.dlq.DeadLetter"

    dlq_id: NonEmpty
    source_topic: str
    partition: Annotated[int, Field(ge=-1, le=INT32_MAX)]
    offset: Annotated[int, Field(ge=-1, le=INT64_MAX)]
    key: bytes | None = None
    value: bytes | None = None
    reason: str
    error_type: str
    stage: DeadLetterStage
    failed_at: UtcDatetime


RECORD_TYPES: tuple[type[_Record], ...] = (RunSummary, WindowStats, Alert, KillSwitchCommand, DeadLetter)
