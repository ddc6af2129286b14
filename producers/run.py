"""A run: one execution of an agent, the unit of budgets, ordering (``seq``) and the Kafka key."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tripwire.producers._runtime import Runtime, new_span_id, new_trace_id, new_uuid, non_empty, now_us, span_end_us
from tripwire.producers.budget import BudgetLimits, RunBudget
from tripwire.producers.errors import BudgetExceeded, InvalidArgumentError
from tripwire.schemas.enums import Outcome
from tripwire.schemas.events import EventBase, RunFinished, RunStarted

if TYPE_CHECKING:
    from tripwire.producers.spans import ModelCallSpan, ToolCallSpan

logger = logging.getLogger(__name__)

# (run, span_id of the innermost open span) of the current context: parent of whatever starts next.
CURRENT: ContextVar[tuple[Run, str] | None] = ContextVar("tripwire_current", default=None)

_OUTCOMES = {o.value: o for o in Outcome} | {o: o for o in Outcome}


def outcome_for(exc: BaseException | None) -> Outcome:
    if exc is None:
        return Outcome.SUCCESS
    explicit = getattr(exc, "run_outcome", None)
    if explicit in _OUTCOMES:
        return _OUTCOMES[explicit]
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError | BudgetExceeded):
        return Outcome.ABORTED
    return Outcome.FAILURE


_TOOL_CALL_SPAN: Any = None  # ToolCallSpan, imported on first use (its module imports this one)


def _tool_call_span() -> Any:
    global _TOOL_CALL_SPAN
    from tripwire.producers.tool_calls import ToolCallSpan

    _TOOL_CALL_SPAN = ToolCallSpan
    return ToolCallSpan


class Run:
    """Use as ``with tracer.run(...) as run:`` or ``async with``; or call ``start()``/``finish()``."""

    def __init__(
        self,
        rt: Runtime,
        *,
        agent_id: str,
        workflow: str,
        principal: str | None,
        conversation_id: str | None,
        run_id: str | None,
        credential_fingerprint: str | None,
        limits: BudgetLimits,
    ) -> None:
        self._rt = rt
        self.agent_id = non_empty("agent_id", agent_id)
        if not isinstance(workflow, str):
            raise InvalidArgumentError(f"workflow must be a string, got {workflow!r}")
        if run_id is not None:
            non_empty("run_id", run_id)
        self.run_id = run_id or new_uuid()
        self.conversation_id = conversation_id
        self.limits = limits
        self.budget = RunBudget(limits)
        parent = CURRENT.get()
        self.parent_run_id = parent[0].run_id if parent else None
        self.parent_span_id = parent[1] if parent else None
        self.trace_id: str = parent[0].trace_id if parent else new_trace_id()
        self.span_id = new_span_id()
        cfg = rt.config
        if principal is not None:  # an identifier, but agents pass e-mail addresses: redacted like any text
            principal = rt.redactor.redact_text(principal, "principal")
        self.base: dict[str, Any] = {
            "schema_version": 1,
            "tenant": cfg.tenant,
            "agent_id": self.agent_id,
            "agent_version": cfg.agent_version,
            "workflow": workflow,
            "environment": cfg.environment,
            "principal": principal,
            "credential_fingerprint": credential_fingerprint,
            "trace_id": self.trace_id,
            "run_id": self.run_id,
        }
        self.workflow = workflow
        self.principal = principal
        self.credential_fingerprint = credential_fingerprint
        self._key = self.run_id.encode()
        self.const = rt.encoder.encode_const(self.base)
        self._lock = threading.Lock()
        self._seq = 0
        self._started_us = 0
        self._started_perf = 0
        self._state = "new"
        self._outcome: Outcome | None = None
        self._token: Token[tuple[Run, str] | None] | None = None

    # -- emission ----------------------------------------------------------------------------------
    def fields(self, span_id: str, parent_span_id: str | None, ts_start: int, ts_end: int) -> dict[str, Any]:
        return {
            "event_id": new_uuid(),
            "span_id": span_id,
            "parent_span_id": parent_span_id,
            "run_id": self.run_id,
            "ts_start": ts_start,
            "ts_end": ts_end,
        }

    def emit(self, model: type[EventBase], fields: dict[str, Any]) -> int:
        """Give the event the run's next seq and enqueue it (encoded here, or by the worker); returns the seq.

        Never raises: an encoding failure is logged (rate-limited) and counted (-1 is returned when the
        encoding on this thread failed; the seq is then not used).
        """
        rt = self._rt
        with self._lock:
            seq = self._seq
            fields["seq"] = seq
            if model is RunFinished:
                fields["last_seq"] = seq
            if rt.encode_in_worker:
                self._seq = seq + 1
                rt.delivery.emit(self._key, (model, fields, self.const, self.base))
                return seq
            try:
                data = rt.encode(model, fields, self.const, self.base)
            except Exception as e:
                rt.encode_errors += 1
                rt.log.error(
                    "encode",
                    "tripwire could not encode event type=%s error=%s",
                    model.__name__,
                    rt.redactor.redact_error(e),
                )
                return -1
            self._seq = seq + 1
            rt.delivery.emit(self._key, data)
        return seq

    @property
    def next_seq(self) -> int:
        return self._seq

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Run:
        if self._state != "new":
            raise InvalidArgumentError(f"run {self.run_id} was already started")
        self._state = "running"
        self._started_us = now_us()
        self._started_perf = time.perf_counter_ns()
        lim = self.limits
        f = self.fields(self.span_id, self.parent_span_id, self._started_us, self._started_us)
        f.update(
            conversation_id=self.conversation_id,
            parent_run_id=self.parent_run_id,
            max_steps=lim.max_steps,
            max_tool_calls=lim.max_tool_calls,
            max_prompt_tokens=lim.max_prompt_tokens,
            max_completion_tokens=lim.max_completion_tokens,
            max_cost_usd=lim.max_cost_usd,
        )
        self.emit(RunStarted, f)
        self._token = CURRENT.set((self, self.span_id))
        return self

    def set_outcome(self, outcome: str | Outcome) -> None:
        """Override the outcome recorded at the end (e.g. ``escalated``)."""
        try:
            self._outcome = _OUTCOMES[outcome]
        except KeyError:
            raise InvalidArgumentError(
                f"outcome must be one of {[o.value for o in Outcome]}, got {outcome!r}"
            ) from None

    def finish(self, outcome: str | Outcome | None = None, error: BaseException | None = None) -> None:
        if self._state != "running":
            if self._state == "finished":
                return
            raise InvalidArgumentError(f"run {self.run_id} was never started")
        self._state = "finished"
        if outcome is not None:
            self.set_outcome(outcome)
        out = self._outcome or outcome_for(error)
        end = span_end_us(self._started_us, self._started_perf)
        f = self.fields(self.span_id, self.parent_span_id, self._started_us, end)
        f["outcome"] = out.value
        f["error_type"] = type(error).__name__ if error is not None else None
        self.emit(RunFinished, f)
        if self._token is not None:
            try:
                CURRENT.reset(self._token)
            except ValueError:  # finished from another context than it started in
                pass
            self._token = None

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish(error=exc)

    async def __aenter__(self) -> Run:
        return self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish(error=exc)

    # -- spans -------------------------------------------------------------------------------------
    def model_call(self, provider: str, model: str, *, operation_name: str = "chat") -> ModelCallSpan:
        from tripwire.producers.spans import ModelCallSpan

        return ModelCallSpan(self, self._rt, provider, model, operation_name)

    def tool_call(
        self,
        name: str,
        args: Any = None,
        *,
        risk: str = "low",
        idempotency_key: str | None = None,
        side_effect: bool | None = None,
        tool_call_id: str | None = None,
    ) -> ToolCallSpan:
        cls = _TOOL_CALL_SPAN or _tool_call_span()
        return cls(self, self._rt, name, args, risk, idempotency_key, side_effect, tool_call_id)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Run(run_id={self.run_id!r}, agent_id={self.agent_id!r}, state={self._state})"


__all__ = ["CURRENT", "Run", "outcome_for"]
