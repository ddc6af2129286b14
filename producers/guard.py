"""Extension points that decide, before a tool runs, whether it may run.

* A :class:`ToolGuard` is asked first (``check``), synchronously, on the agent's thread: it returns
  :data:`ALLOW` or a :class:`GuardDecision` that requires approval, or raises a
  :class:`~tripwire.producers.errors.ToolBlocked` subclass to block the call. The kill switch plugs in
  here. It must be fast and take no I/O (evaluate a local snapshot). ``done`` is told how the call ended.
* An *approver* (sync or async callable) answers :class:`ApprovalRequest`s; its answer is recorded
  as an ``ApprovalDecision`` event. No approver configured means a call needing approval is denied.
  An approver that cannot answer yet may raise an exception carrying ``tripwire_suspend = True`` (a
  framework's pause for a human, such as a LangGraph interrupt): the call is then neither run nor
  recorded, its budget reservation is given back (``done`` is told ``suspended``), the exception
  propagates, and the framework's retry of the call asks again.

A guard that raises anything else fails closed for high-risk tools and open for the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tripwire.schemas.enums import Risk

_UNREAD: Any = object()
_FIELDS = (
    "tenant", "agent_id", "agent_version", "workflow", "environment", "principal", "credential_fingerprint",
    "run_id", "trace_id", "tool_name", "tool_call_id", "risk", "side_effect", "idempotency_key",
)


class ToolRequest:
    """What a guard or an approver knows about a tool call about to run (args are redacted).

    Immutable. ``args`` is the call's args redacted; a request built by the SDK redacts them on first
    access (on the thread that reads them) and keeps the result, so a guard that never reads them (the
    kill switch) costs the agent thread no redaction: the args are then redacted by the delivery worker
    with the rest of the event (see ``tripwire.producers._args``). The raw args are never exposed.
    """

    __slots__ = (*_FIELDS, "_args", "_load_args")

    tenant: str
    agent_id: str
    agent_version: str
    workflow: str
    environment: str
    principal: str | None
    credential_fingerprint: str | None
    run_id: str
    trace_id: str
    tool_name: str
    tool_call_id: str
    risk: Risk
    side_effect: bool
    idempotency_key: str | None
    _args: Any
    _load_args: Callable[[], Any] | None

    def __init__(
        self,
        *,
        tenant: str,
        agent_id: str,
        agent_version: str,
        workflow: str,
        environment: str,
        principal: str | None,
        credential_fingerprint: str | None,
        run_id: str,
        trace_id: str,
        tool_name: str,
        tool_call_id: str,
        risk: Risk,
        side_effect: bool,
        idempotency_key: str | None,
        args: Any = None,
        load_args: Callable[[], Any] | None = None,
    ) -> None:
        """``args`` (already redacted), or ``load_args``: a function returning them redacted, called once,
        when ``args`` is first read."""
        values = locals()
        init = object.__setattr__
        for name in _FIELDS:
            init(self, name, values[name])
        init(self, "_args", _UNREAD if load_args is not None else args)
        init(self, "_load_args", load_args)

    @property
    def args(self) -> Any:
        """The call's args, redacted (on first access for a request built by the SDK)."""
        value = self._args
        if value is _UNREAD:
            load = self._load_args
            assert load is not None  # set whenever _args is unread
            value = load()
            object.__setattr__(self, "_args", value)
            object.__setattr__(self, "_load_args", None)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ToolRequest is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ToolRequest is immutable: cannot delete {name!r}")

    def __repr__(self) -> str:  # the args are not shown (nor redacted for the purpose)
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS)
        return f"ToolRequest({fields}, args=...)"


@dataclass(frozen=True, slots=True)
class GuardDecision:
    require_approval: bool = False
    reason: str | None = None


ALLOW = GuardDecision()


@runtime_checkable
class ToolGuard(Protocol):
    def check(self, request: ToolRequest) -> GuardDecision:
        """ALLOW, a decision requiring approval, or raise ToolBlocked (or a subclass) to block."""
        ...

    def done(self, request: ToolRequest, status: str) -> None:
        """Called once the call ended (``ok``, ``error``, ``timeout``, ``blocked``, ``denied``, ``suspended``)."""
        ...


class AllowAllGuard:
    """The default guard: every call may run."""

    def check(self, request: ToolRequest) -> GuardDecision:
        return ALLOW

    def done(self, request: ToolRequest, status: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    request: ToolRequest
    reason: str | None


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    approved: bool
    approver: str | None = None
    reason: str | None = None


Approver = Callable[[ApprovalRequest], "ApprovalResult | bool | Awaitable[ApprovalResult | bool]"]


def as_result(answer: Any) -> ApprovalResult:
    if isinstance(answer, ApprovalResult):
        return answer
    if isinstance(answer, bool):
        return ApprovalResult(approved=answer)
    raise TypeError(f"an approver must return ApprovalResult or bool, got {type(answer).__name__}")


__all__ = [
    "ALLOW",
    "AllowAllGuard",
    "ApprovalRequest",
    "ApprovalResult",
    "Approver",
    "GuardDecision",
    "ToolGuard",
    "ToolRequest",
    "as_result",
]
