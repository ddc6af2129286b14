"""Scripted runs for the processor tests: valid contract events with chosen costs, tokens,
latencies and statuses, deterministic ids, and seq numbers assigned in emission order."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tripwire.schemas import ApprovalDecision, ModelCall, RunFinished, RunStarted, ToolCall

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def args_hash(args: str) -> str:
    return hashlib.sha256(args.encode()).hexdigest()


class RunScript:
    """Builds the events of one run; ``at`` is the event-time cursor (each call advances it)."""

    def __init__(
        self,
        seed: int = 0,
        *,
        tenant: str = "acme",
        agent_id: str = "refund-assistant",
        agent_version: str = "1.4.2",
        credential: str | None = "fp-key-1",
        start: datetime = T0,
        run_id: str | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.run_id = run_id or str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.trace_id = f"{self.rng.getrandbits(128) | 1:032x}"
        self.tenant, self.agent_id, self.agent_version = tenant, agent_id, agent_version
        self.credential = credential
        self.at = start
        self.seq = 0
        self.events: list[Any] = []

    def _base(self, dur_ms: float, **over: Any) -> dict[str, Any]:
        start = self.at
        self.at = start + timedelta(milliseconds=dur_ms)
        base = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "tenant": self.tenant,
            "agent_id": self.agent_id,
            "agent_version": self.agent_version,
            "workflow": "refunds",
            "environment": "test",
            "principal": "user:7",
            "credential_fingerprint": self.credential,
            "trace_id": self.trace_id,
            "span_id": f"{self.rng.getrandbits(64) | 1:016x}",
            "run_id": self.run_id,
            "seq": self.seq,
            "ts_start": start,
            "ts_end": self.at,
        }
        base.update(over)
        self.seq += 1
        return base

    def _add(self, event: Any) -> Any:
        self.events.append(event)
        return event

    def start(self, **budgets: Any) -> RunStarted:
        return self._add(RunStarted(**self._base(0.0), **budgets))

    def model(
        self,
        cost: float | None = 0.01,
        *,
        dur_ms: float = 500.0,
        status: str = "ok",
        model: str = "gpt-4o",
        provider: str = "openai",
        input_tokens: int = 100,
        cache_read: int = 0,
        cache_write: int = 0,
        output: int = 50,
        reasoning: int = 0,
        **over: Any,
    ) -> ModelCall:
        return self._add(
            ModelCall(
                **self._base(dur_ms, **over),
                provider=provider,
                request_model=model,
                response_model=model,
                input_tokens=input_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                output_tokens=output,
                reasoning_tokens=reasoning,
                cost_usd=cost,
                cost_source="provider_reported" if cost is not None else "unknown",
                status=status,
            )
        )

    def tool(
        self,
        name: str = "lookup_order",
        *,
        dur_ms: float = 100.0,
        status: str = "ok",
        risk: str = "low",
        args: str = '{"order": 1}',
        approval_ref: str | None = None,
        call_id: str | None = None,
        **over: Any,
    ) -> ToolCall:
        return self._add(
            ToolCall(
                **self._base(dur_ms, **over),
                tool_name=name,
                tool_call_id=call_id or f"call-{self.seq}",
                risk=risk,
                args=args,
                args_hash=args_hash(args),
                status=status,
                approval_ref=approval_ref,
                side_effect=risk != "low",
            )
        )

    def approval(self, call_id: str, *, tool: str = "issue_refund", decision: str = "approved") -> ApprovalDecision:
        return self._add(
            ApprovalDecision(
                **self._base(10.0), tool_name=tool, tool_call_id=call_id, risk="high", decision=decision, approver="bob"
            )
        )

    def finish(self, outcome: str = "success") -> RunFinished:
        seq = self.seq
        return self._add(RunFinished(**self._base(1.0), outcome=outcome, last_seq=seq))


STATE_NOW = 1_800_000_000.0


def state_scenario() -> list[tuple[float, Any]]:
    """Events (with their arrival times) that leave every kind of operator state in a Pipeline: a
    closed run with a RunSummary revision, an open run with a runaway-loop incident, latency
    windows and detector state of two agents, a credential shared by two agents. The v1 state
    fixture (tests/fixtures/proc_state/v1_pipeline.json) is these events folded by the format-v1 code."""
    done = RunScript(11)
    done.start(max_tool_calls=10)
    done.model(0.1)
    done.tool()
    done.finish()
    loop = RunScript(12, credential="fp-shared")
    loop.start()
    for _ in range(6):
        loop.tool(args="same")
    other = RunScript(13, credential="fp-shared", agent_id="billing-bot")
    other.start()
    other.model(0.2, status="error")
    events = [*done.events, *loop.events, *other.events]
    return [(STATE_NOW + i * 0.5, e) for i, e in enumerate(events)]
