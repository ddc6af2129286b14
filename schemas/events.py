"""Event models: the values on ``tripwire.events.v1`` (an Avro union of these records).

Field names, types and optionality mirror ``avro/v*/events.avsc`` (the source of truth);
``tests/unit/test_contract_models_match_avsc.py`` fails if they drift apart.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, Field, model_validator

from tripwire.schemas._types import (
    INT32_MAX,
    MODEL_CONFIG,
    Count,
    NonEmpty,
    Sha256Hex,
    SpanId,
    TraceId,
    Usd,
    UtcDatetime,
    UuidText,
)
from tripwire.schemas.enums import CallStatus, CostSource, Decision, Outcome, Risk

EVENTS_SCHEMA = "events"
_NS = "tripwire.events."


class EventBase(BaseModel):
    """Identity, trace context, ordering and timing carried by every event."""

    model_config = MODEL_CONFIG
    SCHEMA_NAME: ClassVar[str] = EVENTS_SCHEMA
    AVRO_NAME: ClassVar[str] = ""

    event_id: UuidText
    schema_version: Annotated[int, Field(ge=1, le=INT32_MAX)] = 1
    tenant: NonEmpty
    agent_id: NonEmpty
    agent_version: str
    workflow: str
    environment: str
    principal: str | None = None
    credential_fingerprint: str | None = None
    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None = None
    run_id: NonEmpty
    seq: Count
    ts_start: UtcDatetime
    ts_end: UtcDatetime

    @model_validator(mode="after")
    def _check_base(self) -> EventBase:
        if self.ts_end < self.ts_start:
            raise ValueError(f"ts_end ({self.ts_end.isoformat()}) is before ts_start ({self.ts_start.isoformat()})")
        return self


class RunStarted(EventBase):
    AVRO_NAME: ClassVar[str] = _NS + "RunStarted"

    conversation_id: str | None = None
    parent_run_id: str | None = None
    max_steps: Count | None = None
    max_tool_calls: Count | None = None
    max_prompt_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    max_cost_usd: Usd | None = None

    @model_validator(mode="after")
    def _first(self) -> RunStarted:
        if self.seq != 0:
            raise ValueError(f"RunStarted must have seq 0, got {self.seq}")
        return self


class ModelCall(EventBase):
    AVRO_NAME: ClassVar[str] = _NS + "ModelCall"

    operation_name: NonEmpty = "chat"
    provider: NonEmpty
    request_model: NonEmpty
    response_model: str | None = None
    input_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    output_tokens: Count = 0
    reasoning_tokens: Count = 0
    cost_usd: Usd | None = None
    cost_source: CostSource = CostSource.UNKNOWN
    price_version: str | None = None
    status: CallStatus
    finish_reason: str | None = None
    error_type: str | None = None
    prompt: str | None = None
    completion: str | None = None


class ToolCall(EventBase):
    AVRO_NAME: ClassVar[str] = _NS + "ToolCall"

    tool_name: NonEmpty
    tool_call_id: NonEmpty
    risk: Risk
    args: str | None = None
    args_hash: Sha256Hex | None = None
    status: CallStatus
    error_type: str | None = None
    idempotency_key: str | None = None
    approval_ref: str | None = None
    side_effect: bool
    blocked_reason: str | None = None


class ApprovalDecision(EventBase):
    AVRO_NAME: ClassVar[str] = _NS + "ApprovalDecision"

    tool_name: NonEmpty
    tool_call_id: NonEmpty
    risk: Risk
    decision: Decision
    approver: str | None = None
    reason: str | None = None


class RunFinished(EventBase):
    AVRO_NAME: ClassVar[str] = _NS + "RunFinished"

    outcome: Outcome
    error_type: str | None = None
    last_seq: Count

    @model_validator(mode="after")
    def _last(self) -> RunFinished:
        if self.last_seq != self.seq:
            raise ValueError(f"last_seq ({self.last_seq}) must equal this event's seq ({self.seq})")
        return self


Event = RunStarted | ModelCall | ToolCall | ApprovalDecision | RunFinished
EVENT_TYPES: tuple[type[EventBase], ...] = (RunStarted, ModelCall, ToolCall, ApprovalDecision, RunFinished)
