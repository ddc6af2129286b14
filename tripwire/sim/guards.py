"""Guards the simulated agents run with: the seed's risk tiers (high-risk actions need a human
approval) chained in front of the kill switch."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence

from tripwire.producers.guard import ALLOW, ApprovalRequest, ApprovalResult, GuardDecision, ToolGuard, ToolRequest
from tripwire.producers.killswitch import KillSwitchBlocked
from tripwire.schemas import Risk

_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}


class RiskTierGuard:
    """Calls at ``min_risk`` and above need an approval (the seed: 'high-risk actions require approval')."""

    def __init__(self, min_risk: Risk = Risk.HIGH) -> None:
        self.min_risk = min_risk

    def check(self, request: ToolRequest) -> GuardDecision:
        if _ORDER[Risk(request.risk)] >= _ORDER[self.min_risk]:
            return GuardDecision(require_approval=True, reason=f"risk tier: {Risk(request.risk).value} needs approval")
        return ALLOW

    def done(self, request: ToolRequest, status: str) -> None:
        return None


class ChainGuard:
    """Asks each guard in turn; the first that blocks wins, and any that asks for approval gets it.
    ``skip(request, index)`` says a guard is bypassed for a call (how the simulator injects a
    misconfigured agent that skips its approval step)."""

    def __init__(self, guards: Sequence[ToolGuard], skip: Callable[[ToolRequest, int], bool] | None = None) -> None:
        self.guards = list(guards)
        self.skip = skip

    def check(self, request: ToolRequest) -> GuardDecision:
        reasons = []
        for i, g in enumerate(self.guards):
            if self.skip is not None and self.skip(request, i):
                continue
            d = g.check(request)
            if d.require_approval:
                reasons.append(d.reason or type(g).__name__)
        return GuardDecision(require_approval=True, reason="; ".join(reasons)) if reasons else ALLOW

    def done(self, request: ToolRequest, status: str) -> None:
        for g in self.guards:
            g.done(request, status)

    def no_approver(self, request: ToolRequest, decision: GuardDecision) -> Exception | None:
        for g in self.guards:
            make = getattr(g, "no_approver", None)
            if make is not None:
                return make(request, decision)
        return None


class SimulatedApprover:
    """A human on the approval queue: approves most requests, denies some. Deterministic per seed."""

    def __init__(self, seed: int, approve_rate: float = 0.92, name: str = "oncall@acme.example") -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.approve_rate = approve_rate
        self.name = name

    def __call__(self, request: ApprovalRequest) -> ApprovalResult:
        with self._lock:
            ok = self._rng.random() < self.approve_rate
        return ApprovalResult(approved=ok, approver=self.name, reason=None if ok else "amount not justified by ticket")


class BlockCounter:
    """Wraps the kill-switch guard and counts the calls it blocked, by the blocking command's id (the
    demo's story feed says how many calls each trip stopped)."""

    def __init__(self, guard: ToolGuard) -> None:
        self.guard = guard
        self._lock = threading.Lock()
        self.by_command: dict[str, int] = {}

    def check(self, request: ToolRequest) -> GuardDecision:
        try:
            return self.guard.check(request)
        except KillSwitchBlocked as e:
            if e.command_id is not None:
                with self._lock:
                    self.by_command[e.command_id] = self.by_command.get(e.command_id, 0) + 1
            raise

    def done(self, request: ToolRequest, status: str) -> None:
        self.guard.done(request, status)

    def no_approver(self, request: ToolRequest, decision: GuardDecision) -> Exception | None:
        make = getattr(self.guard, "no_approver", None)
        return make(request, decision) if make is not None else None

    def blocked(self, command_id: str) -> int:
        return self.by_command.get(command_id, 0)
