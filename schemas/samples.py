"""Deterministic, valid example records of every contract type, for tests, benchmarks and demos."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from tripwire.schemas.enums import CallStatus, CostSource, Decision, KillSwitchAction, Outcome, Risk, Severity
from tripwire.schemas.events import ApprovalDecision, EventBase, ModelCall, RunFinished, RunStarted, ToolCall
from tripwire.schemas.records import Alert, DeadLetter, KillSwitchCommand, RunSummary, WindowStats

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n - 1)) + rng.choice("123456789abcdef")


def sample_run(seed: int = 0, *, steps: int = 3, tenant: str = "acme") -> list[EventBase]:
    """A complete run: RunStarted, ``steps`` alternating model/tool calls (one approval), RunFinished."""
    rng = random.Random(seed)
    run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    trace_id = _hex(rng, 32)
    root_span = _hex(rng, 16)
    t = T0 + timedelta(seconds=seed)

    def base(seq: int, dur_ms: float, parent: str | None = root_span) -> dict[str, Any]:
        nonlocal t
        start, t = t, t + timedelta(milliseconds=dur_ms)
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "tenant": tenant,
            "agent_id": "refund-assistant",
            "agent_version": "1.4.2",
            "workflow": "refund_request",
            "environment": "prod",
            "principal": "user:42",
            "credential_fingerprint": hashlib.sha256(b"key-1").hexdigest()[:16],
            "trace_id": trace_id,
            "span_id": root_span if parent is None else _hex(rng, 16),
            "parent_span_id": parent,
            "run_id": run_id,
            "seq": seq,
            "ts_start": start,
            "ts_end": t,
        }

    events: list[EventBase] = [
        RunStarted(
            **base(0, 0.0, None),
            conversation_id="conv-1",
            max_steps=20,
            max_tool_calls=10,
            max_prompt_tokens=200_000,
            max_completion_tokens=20_000,
            max_cost_usd=2.5,
        )
    ]
    for i in range(steps):
        seq = len(events)
        if i % 2 == 0:
            events.append(
                ModelCall(
                    **base(seq, rng.uniform(200, 2000)),
                    provider="openai",
                    request_model="gpt-4o",
                    response_model="gpt-4o-2024-08-06",
                    input_tokens=rng.randint(100, 5000),
                    cache_read_tokens=rng.randint(0, 2000),
                    cache_write_tokens=0,
                    output_tokens=rng.randint(10, 800),
                    reasoning_tokens=0,
                    cost_usd=round(rng.uniform(0.001, 0.05), 6),
                    cost_source=CostSource.PRICE_TABLE,
                    price_version="2026-01-01",
                    status=CallStatus.OK,
                    finish_reason="tool_calls",
                )
            )
        else:
            args = json.dumps({"order_id": f"A-{rng.randint(1, 10_000)}", "amount": 12.5})
            risk = Risk.HIGH if i == 1 else Risk.LOW
            approval_ref = None
            if risk is Risk.HIGH:
                approval = ApprovalDecision(
                    **base(seq, 50.0),
                    tool_name="issue_refund",
                    tool_call_id=f"call_{i}",
                    risk=risk,
                    decision=Decision.APPROVED,
                    approver="policy:auto-small",
                )
                events.append(approval)
                approval_ref, seq = approval.event_id, seq + 1
            events.append(
                ToolCall(
                    **base(seq, rng.uniform(20, 400)),
                    tool_name="issue_refund" if risk is Risk.HIGH else "lookup_order",
                    tool_call_id=f"call_{i}",
                    risk=risk,
                    args=args,
                    args_hash=hashlib.sha256(args.encode()).hexdigest(),
                    status=CallStatus.OK,
                    idempotency_key=f"idem-{run_id}-{i}",
                    approval_ref=approval_ref,
                    side_effect=risk is Risk.HIGH,
                )
            )
    last = len(events)
    events.append(RunFinished(**base(last, 0.0, None), outcome=Outcome.SUCCESS, last_seq=last))
    return events


def sample_records() -> list[BaseModel]:
    """One of each downstream record, every optional field filled."""
    return [
        RunSummary(
            run_id="r-1",
            tenant="acme",
            agent_id="refund-assistant",
            agent_version="1.4.2",
            workflow="refund_request",
            environment="prod",
            principal="user:42",
            trace_id="ab" * 16,
            started_at=T0,
            ended_at=T0 + timedelta(seconds=3),
            duration_ms=3000.0,
            outcome="success",
            cost_usd=0.03,
            cost_by_model={"gpt-4o": 0.03},
            cost_input_usd=0.02,
            cost_output_usd=0.01,
            input_tokens=1200,
            output_tokens=300,
            steps=3,
            model_calls=2,
            tool_calls=1,
            approvals=1,
            budget_cost_pct=1.2,
            budget_steps_pct=15.0,
            events_seen=6,
            missing_seqs=[4],
            seq_gaps=1,
            version=6,
            emitted_at=T0 + timedelta(seconds=4),
        ),
        WindowStats(
            tenant="acme",
            agent_id="refund-assistant",
            agent_version="1.4.2",
            kind="model",
            name="gpt-4o",
            model="gpt-4o",
            window_start=T0,
            window_end=T0 + timedelta(minutes=1),
            count=10,
            errors=1,
            cost_usd=0.2,
            p50_ms=800.0,
            p95_ms=1900.0,
            p99_ms=2100.0,
            min_ms=210.0,
            max_ms=2200.0,
            sum_ms=9500.0,
            sketch=b"\x02\x00\xff",
            emitted_at=T0 + timedelta(minutes=1, seconds=1),
        ),
        Alert(
            alert_id="al-1",
            incident_id="inc-1",
            kind="cost_spike",
            severity=Severity.CRITICAL,
            scope="agent:refund-assistant",
            tenant="acme",
            agent_id="refund-assistant",
            agent_version="1.4.2",
            tool_name="issue_refund",
            run_id="r-1",
            credential_fingerprint="f00d",
            observed=5.2,
            threshold=2.5,
            window_start=T0,
            window_end=T0 + timedelta(minutes=5),
            count=3,
            evidence_event_ids=["e1", "e2"],
            evidence_trace_ids=["ab" * 16],
            summary="cost 5.20 USD over 2.50",
            status="firing",
            created_at=T0,
            updated_at=T0 + timedelta(minutes=5),
        ),
        KillSwitchCommand(
            command_id="c-1",
            scope="agent:refund-assistant",
            action=KillSwitchAction.FORCE_APPROVAL,
            min_risk=Risk.HIGH,
            throttle_per_minute=None,
            issued_at=T0,
            expires_at=T0 + timedelta(hours=1),
            reason="cost spike",
            alert_id="al-1",
            issued_by="oncall:jane",
            nonce="n-1",
            key_id="k1",
            signature=b"\x01" * 64,
        ),
        DeadLetter(
            dlq_id="d-1",
            source_topic="tripwire.events.v1",
            partition=3,
            offset=12345,
            key=b"run-1",
            value=b"\xc3\x01garbage",
            reason="bad_marker: expected C3 01",
            error_type="DecodeError",
            stage="decode",
            failed_at=T0,
        ),
    ]
