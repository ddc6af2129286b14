"""Kill-switch enforcement inside the agent: :class:`KillSwitchGuard`, the SDK's adapter to ``tripwire.killswitch``.

The guard keeps a :class:`KillSwitchState` current from the compacted kill-switch topic (the
package's background :class:`KillSwitchListener`) and is consulted by ``run.tool_call(...)`` before the
tool runs. For the scopes that match the call (global, tenant, agent, agent@version, tool,
agent/tool, credential):

- ``freeze_tool``       -> :class:`ToolFrozen` (the call is blocked);
- ``throttle``          -> at most N calls per sliding minute, :class:`ToolThrottled` beyond;
- ``disable_autonomy``  -> every call needs a human approval through the tracer's approver;
  with no approver, :class:`AutonomyDisabled`;
- ``force_approval``    -> the same, for calls at ``min_risk`` and above;
- ``resume``            -> the scope is clear again.

**Fail-safe.** When the listener has not confirmed contact with the topic for longer than
``staleness_s`` (or never did), high-risk calls are blocked with :class:`KillSwitchStale`,
low-risk calls run (still under the last known state), and medium-risk calls follow
``stale_medium_risk``.

The hot path (no switch in force, feed fresh) is a few dictionary lookups on an immutable
snapshot: no lock, no I/O.

Usage (the control plane ran ``tripwire keys generate`` and gave agents the public key)::

    # env: TRIPWIRE_KILLSWITCH_PUBLIC_KEY_PATH=/etc/tripwire/killswitch_ed25519.pub.pem
    #      TRIPWIRE_KILLSWITCH_BOOTSTRAP=kafka:9092   (falls back to TRIPWIRE_KAFKA_BOOTSTRAP)
    guard = KillSwitchGuard()                      # starts the listener thread
    tracer = Tracer(config, guard=guard, approver=ask_a_human)   # sync or async approver
    with tracer.run(agent_id="refund-assistant") as run:
        with run.tool_call("stripe.issue_refund", args=..., risk="high"):  # may raise ToolFrozen, ...
            ...

On-call: ``tripwire killswitch trip --scope agent:refund-assistant --action disable_autonomy --reason ...``,
``tripwire killswitch reset --scope ...``, ``tripwire killswitch status``, ``tripwire killswitch audit``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from tripwire.core.ratelimit import RateLimitedLog
from tripwire.killswitch import (
    CLEAR,
    ActiveSwitch,
    CallIdentity,
    CommandVerifier,
    KillSwitchConfig,
    KillSwitchListener,
    KillSwitchState,
    Rejection,
    Throttle,
    Throttles,
    build_verifier,
    matching_scopes,
)
from tripwire.producers.errors import ToolBlocked
from tripwire.producers.guard import ALLOW as GUARD_ALLOW
from tripwire.producers.guard import GuardDecision, ToolRequest
from tripwire.schemas.enums import Risk

log = logging.getLogger(__name__)

MAX_CACHED_IDENTITIES = 4096


class KillSwitchBlocked(ToolBlocked):
    """A tool call refused by the kill switch; ``scope`` and ``command_id`` name the switch (if any)."""

    def __init__(self, reason: str, switch: ActiveSwitch | None = None) -> None:
        super().__init__(reason)
        self.scope = switch.scope if switch else None
        self.command_id = switch.command_id if switch else None
        self.alert_id = switch.alert_id if switch else None


class ToolFrozen(KillSwitchBlocked):
    """The tool is frozen for this call's scope."""


class AutonomyDisabled(KillSwitchBlocked):
    """The call needs a human approval (disable_autonomy or force_approval) and no approver is configured."""


class ToolThrottled(KillSwitchBlocked):
    """The scope's per-minute call limit is used up; ``retry_after_s`` says when a slot frees up."""

    def __init__(self, reason: str, switch: ActiveSwitch | None = None, retry_after_s: float = 0.0) -> None:
        super().__init__(reason, switch)
        self.retry_after_s = retry_after_s


class KillSwitchStale(KillSwitchBlocked):
    """The guard cannot confirm the kill-switch state (no contact with the topic): the call fails closed."""


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The guard's answer for one call that may run: ``approval`` is the switch that demands a human, if any."""

    approval: ActiveSwitch | None = None

    @property
    def needs_approval(self) -> bool:
        return self.approval is not None

    @property
    def approval_reason(self) -> str | None:
        return f"kill switch: {self.approval.describe()}" if self.approval is not None else None


ALLOW = GuardVerdict()


class KillSwitchGuard:
    """Enforces kill-switch commands for one agent process (see the module doc)."""

    def __init__(
        self,
        config: KillSwitchConfig | None = None,
        *,
        verifier: CommandVerifier | None = None,
        state: KillSwitchState | None = None,
        start: bool = True,
    ) -> None:
        self.config = config or KillSwitchConfig()
        if state is None:
            if verifier is None and not self.config.enabled and self.config.public_key_path is None \
                    and self.config.public_key is None:
                # Disabled and keyless: a throwaway key that trusts nothing (the state is never consulted).
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

                verifier = CommandVerifier([Ed25519PrivateKey.generate().public_key()])
            verifier = verifier or build_verifier(self.config)
            state = KillSwitchState(verifier, max_clock_skew_s=self.config.max_clock_skew_s)
        self.state = state
        self.listener = KillSwitchListener(self.config, self.state)
        self._throttles = Throttles()
        self._held_slots: dict[str, list[Throttle]] = {}
        self._keys: dict[tuple[str | None, ...], tuple[str, ...]] = {}
        self._enabled = self.config.enabled
        self._staleness_s = self.config.staleness_s
        self._waited_for_ready = False
        self._rl = RateLimitedLog(log, interval_s=10.0)
        self.blocked = 0
        self.stale_blocked = 0
        if start and self.config.enabled:
            self.listener.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KillSwitchGuard:
        self.listener.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.listener.close(timeout)

    def __enter__(self) -> KillSwitchGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.state.ready.wait(self.config.ready_timeout_s if timeout is None else timeout)

    @property
    def rejected(self) -> dict[str, int]:
        """Commands ignored so far, by reason (unsigned, bad_signature, expired, replay, ...)."""
        return {r.value: self.state.rejected[r.value] for r in Rejection if self.state.rejected[r.value]}

    # -- the check -----------------------------------------------------------------------------

    def authorize(
        self, call: CallIdentity, risk: Risk | str, *, now: datetime | None = None, call_id: str | None = None
    ) -> GuardVerdict:
        """Decide before the tool runs: raise a :class:`KillSwitchBlocked` subclass, or return whether a human
        must approve. A throttle slot taken here is given back by :meth:`done` if the call does not run."""
        return self._authorize(matching_scopes(call), call.tool_name, risk, now, call_id)

    def _authorize(
        self, keys: tuple[str, ...], tool_name: str, risk: Risk | str, now: datetime | None, call_id: str | None
    ) -> GuardVerdict:
        if not self._enabled:
            return ALLOW
        if risk.__class__ is not Risk:
            risk = Risk(risk)
        state = self.state
        if not state.is_fresh(self._staleness_s):
            self._ensure_ready()
            self._check_fresh(tool_name, risk)  # type: ignore[arg-type]
        verdict = state.evaluate_keys(keys, risk, now)  # type: ignore[arg-type]
        if verdict is CLEAR:
            return ALLOW
        if verdict.frozen is not None:
            self.blocked += 1
            raise ToolFrozen(f"kill switch: {tool_name} is frozen by {verdict.frozen.describe()}", verdict.frozen)
        if verdict.throttles:
            taken = self._throttles.acquire(verdict.throttles)
            if isinstance(taken, list):
                if call_id is not None:
                    self._held_slots[call_id] = taken
            else:
                switch, wait = taken
                self.blocked += 1
                raise ToolThrottled(
                    f"kill switch: throttle {switch.throttle_per_minute}/min on {switch.scope} reached; "
                    f"retry in {wait:.1f}s",
                    switch,
                    retry_after_s=wait,
                )
        return GuardVerdict(approval=verdict.approval) if verdict.approval is not None else ALLOW

    # -- the SDK's ToolGuard protocol ------------------------------------------------------------

    def check(self, request: ToolRequest) -> GuardDecision:
        """:class:`~tripwire.producers.guard.ToolGuard` entry point, called before the tool runs."""
        identity = (request.tenant, request.agent_id, request.agent_version, request.tool_name,
                    request.credential_fingerprint)
        keys = self._keys.get(identity)
        if keys is None:
            keys = matching_scopes(CallIdentity(*identity))
            if len(self._keys) >= MAX_CACHED_IDENTITIES:
                self._keys.clear()
            self._keys[identity] = keys
        verdict = self._authorize(keys, request.tool_name, request.risk, None, request.tool_call_id)
        if verdict.approval is None:
            return GUARD_ALLOW
        return GuardDecision(require_approval=True, reason=verdict.approval_reason)

    def done(self, request: ToolRequest, status: str) -> None:
        """A call that did not run (blocked, denied or suspended after the check) gives its throttle slots back."""
        taken = self._held_slots.pop(request.tool_call_id, None) if self._held_slots else None
        if taken and status in ("blocked", "denied", "suspended"):
            Throttles.release(taken)

    def no_approver(self, request: ToolRequest, decision: GuardDecision) -> AutonomyDisabled:
        """The error for a call the kill switch sends to a human when no approver is configured: blocked."""
        self.blocked += 1
        return AutonomyDisabled(f"{decision.reason}; no approver is configured")

    def _ensure_ready(self) -> None:
        if self.state.ready.is_set() or self._waited_for_ready:
            return
        # Only the first guarded call waits (bounded); after that, an unready feed is simply stale.
        t0 = time.monotonic()
        ready = self.state.ready.wait(self.config.ready_timeout_s)
        self._waited_for_ready = True
        if not ready:
            log.warning("killswitch state not loaded after %.1fs; failing safe until it is", time.monotonic() - t0)

    def _check_fresh(self, tool_name: str, risk: Risk) -> None:
        age = self.state.staleness()
        if age is not None and age <= self.config.staleness_s and self.state.ready.is_set():
            return
        closed = risk is Risk.HIGH or (risk is Risk.MEDIUM and self.config.stale_medium_risk == "closed")
        self._rl.warning("stale", "killswitch state is stale age_s=%s risk=%s fail=%s",
                         "never" if age is None else f"{age:.1f}", risk.value, "closed" if closed else "open")
        if closed:
            self.blocked += 1
            self.stale_blocked += 1
            since = "never confirmed" if age is None else f"last confirmed {age:.1f}s ago"
            raise KillSwitchStale(
                f"kill switch state unknown ({since}, limit {self.config.staleness_s:g}s): "
                f"{risk.value}-risk tool {tool_name} fails closed"
            )


__all__ = [
    "ALLOW",
    "AutonomyDisabled",
    "GuardVerdict",
    "KillSwitchBlocked",
    "KillSwitchGuard",
    "KillSwitchStale",
    "ToolFrozen",
    "ToolThrottled",
]
