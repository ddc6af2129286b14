"""Tool-call spans: budget, guard and approval before the tool runs; one ToolCall event per call."""

from __future__ import annotations

import asyncio
import inspect
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tripwire.producers._args import PendingArgs, args_digest, snapshot_args
from tripwire.producers._runtime import (
    _RISKS,
    Runtime,
    as_risk,
    canonical_json,
    new_span_id,
    non_empty,
    now_us,
)
from tripwire.producers.errors import ApprovalDenied, BudgetExceeded, InvalidArgumentError, ToolBlocked
from tripwire.producers.guard import ApprovalRequest, GuardDecision, ToolRequest, as_result
from tripwire.producers.run import CURRENT
from tripwire.schemas.enums import Risk
from tripwire.schemas.events import ApprovalDecision, ToolCall

if TYPE_CHECKING:
    from tripwire.producers.run import Run

from tripwire.producers._span_base import _BLOCKED, _DENIED, _OK, _Span, _status_of

SUSPEND_ATTR = "tripwire_suspend"
"""An exception raised by an approver with this attribute true suspends the call instead of failing it."""
_SUSPENDED = "suspended"


class ToolCallSpan(_Span):
    """``with run.tool_call("stripe.issue_refund", args={...}, risk="high") as call: ...``.

    Before the body runs: the args are checked (JSON-serializable) and snapshotted as canonical JSON,
    the tool-call budget is reserved, the guard is asked and, if it wants one, an approval is obtained.
    A refused call emits a ToolCall with status ``blocked`` or ``denied`` and raises (a
    :class:`ToolBlocked`). The args are hashed and redacted where the event is encoded (see
    :mod:`tripwire.producers._args`), or here if a guard or approver read them (``ToolRequest.args`` is lazy).
    """

    __slots__ = (
        "_approval_ref",
        "_args",
        "_args_done",
        "_args_json",
        "_request",
        "_risk_value",
        "idempotency_key",
        "risk",
        "side_effect",
        "tool_call_id",
        "tool_name",
    )

    def __init__(
        self,
        run: Run,
        rt: Runtime,
        name: str,
        args: Any,
        risk: Any,
        idempotency_key: str | None,
        side_effect: bool | None,
        tool_call_id: str | None,
    ) -> None:
        # _Span.__init__ inlined, and the checks' common cases tested in place: the per-call cost counts
        self._run = run
        self._rt = rt
        self._parent_span_id: str | None = ""  # "" = not decided yet
        self._token = None
        self.tool_name = name if type(name) is str and name.strip() else non_empty("tool name", name)
        try:
            self.risk: Risk = _RISKS[risk]
        except (KeyError, TypeError):
            self.risk = as_risk(risk)
        self._risk_value = self.risk.value
        if idempotency_key is not None and not isinstance(idempotency_key, str):
            raise InvalidArgumentError(f"idempotency_key must be a string, got {idempotency_key!r}")
        self.idempotency_key = idempotency_key
        if side_effect is not None and not isinstance(side_effect, bool):
            raise InvalidArgumentError(f"side_effect must be a bool, got {side_effect!r}")
        self.side_effect = side_effect if side_effect is not None else self.risk is not Risk.LOW
        if tool_call_id is not None and (type(tool_call_id) is not str or not tool_call_id):
            raise InvalidArgumentError(f"tool_call_id must be a non-empty string, got {tool_call_id!r}")
        self.span_id = new_span_id()
        self.tool_call_id = tool_call_id if tool_call_id is not None else self.span_id
        self._args = args
        self._args_json = None if args is None else snapshot_args(args)  # raises InvalidArgumentError here
        self._args_done: tuple[str | None, str] | None = None  # (args as logged, hash) once finished here
        self._approval_ref: str | None = None
        self._request: ToolRequest | None = None

    def _redacted_args(self) -> Any:
        """The args redacted, for a guard or an approver that reads ``ToolRequest.args`` (on its thread, once);
        the event reuses the work. A guard that never reads them leaves them to the encoder."""
        canonical = self._args_json
        if canonical is None:
            return None
        rt = self._rt
        fin = rt.args
        if rt.redactor.is_clean_json(canonical):
            red, logged = self._args, canonical
        else:
            red = rt.redactor.redact(self._args, "args")
            if red == self._args:
                logged = canonical
            else:
                try:
                    logged = canonical_json(red)
                except InvalidArgumentError:
                    logged = '"[REDACTED]"'
        self._args_done = (logged if fin.log_args else None, args_digest(canonical))
        return red

    def _event(
        self, status: str, error_type: str | None, blocked_reason: str | None, start: int, end: int
    ) -> dict[str, Any]:
        # the args: finished here (a guard needed them redacted; or a custom hook must run on this
        # thread), else left to the encoder (PendingArgs: see tripwire.producers._args)
        # the event_id too: nothing on this thread reads a ToolCall's, so the encoder draws it
        canonical = self._args_json
        args_json: Any
        if canonical is None:
            args_json = args_hash = None
        elif self._args_done is not None:
            args_json, args_hash = self._args_done
        elif self._rt.args.deferred:
            args_json, args_hash = PendingArgs(canonical), None
        else:
            self._args_done = self._rt.args.finish(canonical)
            args_json, args_hash = self._args_done
        return {
            "event_id": None,
            "run_id": self._run.run_id,
            "span_id": self.span_id,
            "parent_span_id": self._parent_span_id,
            "ts_start": start,
            "ts_end": end,
            "tool_name": self.tool_name,
            "tool_call_id": self.tool_call_id,
            "risk": self._risk_value,
            "args": args_json,
            "args_hash": args_hash,
            "status": status,
            "error_type": error_type,
            "idempotency_key": self.idempotency_key,
            "approval_ref": self._approval_ref,
            "side_effect": self.side_effect,
            "blocked_reason": blocked_reason,
        }

    # -- before the body -----------------------------------------------------------------------
    def _tool_request(self) -> ToolRequest:
        if self._request is None:
            run = self._run
            self._request = ToolRequest(
                tenant=self._rt.tenant,
                agent_id=run.agent_id,
                agent_version=self._rt.agent_version,
                workflow=run.workflow,
                environment=self._rt.environment,
                principal=run.principal,
                credential_fingerprint=run.credential_fingerprint,
                run_id=run.run_id,
                trace_id=run.trace_id,
                tool_name=self.tool_name,
                tool_call_id=self.tool_call_id,
                risk=self.risk,
                side_effect=self.side_effect,
                idempotency_key=self.idempotency_key,
                load_args=self._redacted_args,  # redacted when a guard or approver first reads them
            )
        return self._request

    def _refuse(self, e: ToolBlocked, reserved: bool) -> None:
        run = self._run
        if reserved:
            run.budget.release_tool_call()
        if self._parent_span_id == "":
            cur = CURRENT.get()
            self._parent_span_id = cur[1] if cur is not None and cur[0] is run else run.span_id
        t = now_us()
        status = _DENIED if isinstance(e, ApprovalDenied) else _BLOCKED
        reason = self._rt.redactor.redact_text(e.reason, "blocked_reason") if e.reason else e.reason
        run.emit(ToolCall, self._event(status, type(e).__name__, reason, t, t))
        self._notify_guard(status)

    def _notify_guard(self, status: str) -> None:
        guard = self._rt.guard
        if guard is None:
            return
        try:
            guard.done(self._tool_request(), status)
        except Exception as e:
            self._rt.log.error("guard.done", "tripwire guard.done failed error=%s", self._rt.redactor.redact_error(e))

    def _check(self) -> GuardDecision | None:
        """Budget + guard. Returns a decision needing approval, or None to proceed; raises if refused."""
        try:
            self._run.budget.reserve_tool_call()
        except BudgetExceeded as e:
            self._refuse(e, reserved=False)
            raise
        guard = self._rt.guard
        if guard is None:
            return None
        try:
            decision = guard.check(self._tool_request())
        except ToolBlocked as e:
            self._refuse(e, reserved=True)
            raise
        except Exception as e:
            # the guard itself failed: high-risk tools fail closed, the others fail open
            self._rt.log.error(
                "guard.check",
                "tripwire guard failed risk=%s error=%s",
                self.risk.value,
                self._rt.redactor.redact_error(e),
            )
            if self.risk is Risk.HIGH:
                blocked = ToolBlocked(f"guard_error: {type(e).__name__}")
                self._refuse(blocked, reserved=True)
                raise blocked from e
            return None
        return decision if decision.require_approval else None

    def _record_approval(self, decision: GuardDecision, answer: Any, asked_us: int) -> None:
        run = self._run
        try:
            result = as_result(answer)
        except TypeError as e:
            self._rt.log.error(
                "approver.type", "tripwire approver answer invalid error=%s", self._rt.redactor.redact_error(e)
            )
            result = None
        approved = bool(result and result.approved)
        red = self._rt.redactor
        reason = (result.reason if result else "invalid approver answer") or decision.reason
        f = run.fields(new_span_id(), run.span_id, asked_us, max(asked_us, now_us()))
        f.update(
            tool_name=self.tool_name,
            tool_call_id=self.tool_call_id,
            risk=self.risk.value,
            decision="approved" if approved else "denied",
            approver=result.approver if result else None,
            reason=red.redact_text(reason, "reason") if reason else reason,
        )
        self._approval_ref = f["event_id"]
        run.emit(ApprovalDecision, f)
        if not approved:
            denied = ApprovalDenied(
                (result.reason if result and result.reason else None)
                or f"approval denied: {decision.reason or 'no reason'}",
                approver=result.approver if result else None,
            )
            self._refuse(denied, reserved=True)
            raise denied

    def _suspend(self) -> None:
        # The approver paused the call (a framework's human-in-the-loop pause, e.g. a LangGraph interrupt):
        # nothing is recorded, the reservation and any guard slot are given back; the framework runs the
        # call again when the human answers, and that attempt records the decision.
        self._run.budget.release_tool_call()
        self._notify_guard(_SUSPENDED)

    def _deny_unanswerable(self, decision: GuardDecision, why: str) -> None:
        denied = ApprovalDenied(f"approval required ({decision.reason or 'guard'}) but {why}")
        self._refuse(denied, reserved=True)
        raise denied

    def _no_approver(self, decision: GuardDecision) -> None:
        # A guard may say how a call it sends to a human is refused when nobody can be asked (the kill
        # switch blocks it with AutonomyDisabled); otherwise the call is denied.
        make = getattr(self._rt.guard, "no_approver", None)
        if make is not None:
            blocked = make(self._tool_request(), decision)
            self._refuse(blocked, reserved=True)
            raise blocked
        self._deny_unanswerable(decision, "no approver is configured")

    def _approve_sync(self, decision: GuardDecision) -> None:
        approver = self._rt.approver
        if approver is None:
            self._no_approver(decision)
        asked = now_us()
        try:
            answer = approver(ApprovalRequest(self._tool_request(), decision.reason))  # type: ignore[misc]
            if inspect.isawaitable(answer):
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    answer = asyncio.run(_await(answer))
                else:
                    if inspect.iscoroutine(answer):
                        answer.close()
                    self._deny_unanswerable(decision, "the approver is async and the call uses sync `with` in a loop")
        except ToolBlocked:
            raise
        except Exception as e:
            if getattr(e, SUSPEND_ATTR, False):
                self._suspend()
                raise
            self._rt.log.error("approver", "tripwire approver failed error=%s", self._rt.redactor.redact_error(e))
            answer = None
        self._record_approval(decision, answer, asked)

    async def _approve_async(self, decision: GuardDecision) -> None:
        approver = self._rt.approver
        if approver is None:
            self._no_approver(decision)
        asked = now_us()
        try:
            answer = approver(ApprovalRequest(self._tool_request(), decision.reason))  # type: ignore[misc]
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as e:
            if getattr(e, SUSPEND_ATTR, False):
                self._suspend()
                raise
            self._rt.log.error("approver", "tripwire approver failed error=%s", self._rt.redactor.redact_error(e))
            answer = None
        self._record_approval(decision, answer, asked)

    # -- context managers ----------------------------------------------------------------------
    def __enter__(self) -> ToolCallSpan:
        decision = self._check()
        if decision is not None:
            self._approve_sync(decision)
        self._open()
        return self

    async def __aenter__(self) -> ToolCallSpan:
        decision = self._check()
        if decision is not None:
            await self._approve_async(decision)
        self._open()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        end = self._close()
        if exc is None:
            status, error_type = _OK, None
        else:
            status, error_type = _status_of(exc), type(exc).__name__
        self._run.emit(ToolCall, self._event(status, error_type, None, self._start_us, end))
        if self._rt.guard is not None:
            self._notify_guard(status)

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, exc, tb)


async def _await(aw: Any) -> Any:
    return await aw


__all__ = ["SUSPEND_ATTR", "ToolCallSpan"]
