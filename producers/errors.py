"""Errors the agent SDK raises on purpose, all under :class:`tripwire.core.errors.TripwireError`.

Everything raised at the agent's call site is one of these; nothing is ever raised into the
agent from the background delivery thread.
"""

from __future__ import annotations

from tripwire.core.errors import TripwireError


class ProducerError(TripwireError):
    """Root of the SDK's errors."""


class InvalidArgumentError(ProducerError, ValueError):
    """Bad input at the API (negative tokens, non-serializable args, an empty agent_id, ...)."""


class ToolBlocked(ProducerError):
    """A tool call was refused before it ran (by the guard, a budget or an approver).

    ``reason`` is recorded as the ToolCall's ``blocked_reason``.
    """

    status = "blocked"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BudgetExceeded(ToolBlocked):
    """A call would exceed one of the run's budgets (steps, tool calls, tokens, cost)."""

    def __init__(self, budget: str, limit: float, used: float) -> None:
        super().__init__(f"budget {budget} exhausted: used {used:g} of {limit:g}")
        self.budget = budget
        self.limit = limit
        self.used = used


class ApprovalDenied(ToolBlocked):
    """A tool call that needed approval was denied (or no approver could be asked: fails closed)."""

    status = "denied"

    def __init__(self, reason: str, approver: str | None = None) -> None:
        super().__init__(reason)
        self.approver = approver


class SpoolError(ProducerError):
    """The on-disk spool cannot be opened or written."""


__all__ = [
    "ApprovalDenied",
    "BudgetExceeded",
    "InvalidArgumentError",
    "ProducerError",
    "SpoolError",
    "ToolBlocked",
]
