"""Per-run budgets, enforced in-process: reserve before the call, commit after it.

Reservation is a check-and-increment under a lock with no ``await`` inside, so it is race-free between
threads and between asyncio tasks alike: ten parallel tool calls against ``max_tool_calls=3`` let
exactly three through. A reservation is released if the call never ran (blocked by the guard or an
approver); token and cost usage is committed when a model call ends. A step is one model call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tripwire.producers.errors import BudgetExceeded


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    max_steps: int | None = None
    max_tool_calls: int | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_cost_usd: float | None = None

    @property
    def unlimited(self) -> bool:
        return (
            self.max_steps is None
            and self.max_tool_calls is None
            and self.max_prompt_tokens is None
            and self.max_completion_tokens is None
            and self.max_cost_usd is None
        )


class RunBudget:
    """Counters of one run against its limits."""

    __slots__ = ("_lock", "completion_tokens", "cost_usd", "limits", "prompt_tokens", "steps", "tool_calls")

    def __init__(self, limits: BudgetLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self.steps = 0
        self.tool_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0

    def _check_spend(self) -> None:
        lim = self.limits
        if lim.max_cost_usd is not None and self.cost_usd >= lim.max_cost_usd:
            raise BudgetExceeded("max_cost_usd", lim.max_cost_usd, self.cost_usd)

    def reserve_tool_call(self) -> None:
        """Take one tool call from the budget or raise :class:`BudgetExceeded` (nothing taken)."""
        lim = self.limits
        with self._lock:
            if lim.max_tool_calls is not None and self.tool_calls >= lim.max_tool_calls:
                raise BudgetExceeded("max_tool_calls", lim.max_tool_calls, self.tool_calls)
            self._check_spend()
            self.tool_calls += 1

    def release_tool_call(self) -> None:
        with self._lock:
            self.tool_calls -= 1

    def reserve_step(self) -> None:
        """Take one step (a model call) or raise :class:`BudgetExceeded` (nothing taken)."""
        lim = self.limits
        with self._lock:
            if lim.max_steps is not None and self.steps >= lim.max_steps:
                raise BudgetExceeded("max_steps", lim.max_steps, self.steps)
            if lim.max_prompt_tokens is not None and self.prompt_tokens >= lim.max_prompt_tokens:
                raise BudgetExceeded("max_prompt_tokens", lim.max_prompt_tokens, self.prompt_tokens)
            if lim.max_completion_tokens is not None and self.completion_tokens >= lim.max_completion_tokens:
                raise BudgetExceeded("max_completion_tokens", lim.max_completion_tokens, self.completion_tokens)
            self._check_spend()
            self.steps += 1

    def release_step(self) -> None:
        with self._lock:
            self.steps -= 1

    def commit_usage(self, prompt_tokens: int, completion_tokens: int, cost_usd: float | None) -> None:
        """Add what a finished model call used (its cost, when known)."""
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if cost_usd is not None:
                self.cost_usd += cost_usd


__all__ = ["BudgetLimits", "RunBudget"]
