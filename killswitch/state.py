"""The SDK's view of the kill switch: one command per scope, verified, and what it means for a call.

Pure logic, no I/O. The listener thread feeds commands in with :meth:`KillSwitchState.apply`;
the agent's threads read with :meth:`KillSwitchState.evaluate`. Writes swap in a new mapping
(copy on write), so a read is a handful of dictionary lookups on an immutable snapshot and
takes no lock.

Rules (the security boundary):
- a command must carry a valid Ed25519 signature by a trusted key (else ``unsigned``,
  ``unknown_key`` or ``bad_signature``);
- its topic key must be its scope (``key_mismatch``) and the scope must parse (``malformed``);
- its ``issued_at`` must be newer than the command already held for that scope (``replay``)
  and not in the future beyond the allowed clock skew (``future``);
- a validly signed command whose ``expires_at`` has passed is ``expired``: it still supersedes
  older commands for its scope (so a restarted SDK reading an uncompacted log ends in the same
  state as a live one), but it is not in force.
Tombstones (null values) are unsigned, so they never clear a scope: ``resume`` does. A copy of the
command a scope already holds (same id and time, verified) is a ``duplicate``: the control plane
re-publishes every scope's command so that compaction never leaves an older one last on its key.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from tripwire.killswitch.scopes import CallIdentity, ScopeError, matching_scopes, parse_scope
from tripwire.killswitch.signing import CommandVerifier, SignatureError
from tripwire.schemas import KillSwitchCommand
from tripwire.schemas.enums import KillSwitchAction, Risk

RISK_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}
DEFAULT_MAX_CLOCK_SKEW_S = 30.0


class Rejection(StrEnum):
    """Why a command was ignored."""

    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    REPLAY = "replay"
    FUTURE = "future"
    KEY_MISMATCH = "key_mismatch"
    MALFORMED = "malformed"
    TOMBSTONE = "tombstone"
    DUPLICATE = "duplicate"
    """A copy of the command the scope already holds (the control plane re-publishes it): harmless."""


@dataclass(frozen=True, slots=True)
class ActiveSwitch:
    """The verified command currently held for one scope."""

    scope: str
    action: KillSwitchAction
    command_id: str
    issued_at: datetime
    expires_at: datetime | None
    reason: str
    issued_by: str
    alert_id: str | None
    min_risk: Risk | None
    throttle_per_minute: int | None

    @classmethod
    def of(cls, c: KillSwitchCommand) -> ActiveSwitch:
        return cls(
            c.scope, KillSwitchAction(c.action), c.command_id, c.issued_at, c.expires_at, c.reason,
            c.issued_by, c.alert_id, Risk(c.min_risk) if c.min_risk is not None else None, c.throttle_per_minute,
        )

    def in_force(self, now: datetime) -> bool:
        return self.action is not KillSwitchAction.RESUME and (self.expires_at is None or now < self.expires_at)

    def describe(self) -> str:
        text = f"{self.action.value} on {self.scope}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass(frozen=True, slots=True)
class ApplyResult:
    accepted: bool
    rejection: Rejection | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the switches in force say about one tool call."""

    frozen: ActiveSwitch | None = None
    approval: ActiveSwitch | None = None
    throttles: tuple[ActiveSwitch, ...] = ()

    @property
    def clear(self) -> bool:
        return self.frozen is None and self.approval is None and not self.throttles

    @property
    def autonomy_disabled(self) -> bool:
        return self.approval is not None and self.approval.action is KillSwitchAction.DISABLE_AUTONOMY


CLEAR = Verdict()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KillSwitchState:
    """Verified commands by scope, plus the counters and contact time of the feed behind them."""

    def __init__(
        self,
        verifier: CommandVerifier,
        *,
        max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = verifier
        self._skew = timedelta(seconds=max_clock_skew_s)
        self._clock = clock
        self._monotonic = monotonic
        # A plain dict that is never mutated once published (writers swap in a new one): readers need no lock.
        self._switches: dict[str, ActiveSwitch] = {}
        self._write_lock = threading.Lock()
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.last_contact: float | None = None
        self.ready = threading.Event()

    # -- writes (the listener thread) --------------------------------------------------------

    def apply(self, command: KillSwitchCommand, *, key: str | None = None, now: datetime | None = None) -> ApplyResult:
        """Verify ``command`` (read under topic ``key``) and make it the scope's state if it passes."""
        now = now or self._clock()
        try:
            self._verifier.verify(command)
        except SignatureError as e:
            return self._reject(Rejection(e.reason), str(e))
        if key is not None and key != command.scope:
            return self._reject(Rejection.KEY_MISMATCH, f"key {key!r} is not the scope {command.scope!r}")
        try:
            scope = str(parse_scope(command.scope))
        except ScopeError as e:
            return self._reject(Rejection.MALFORMED, str(e))
        if command.issued_at > now + self._skew:
            return self._reject(Rejection.FUTURE, f"issued_at {command.issued_at.isoformat()} is in the future")
        with self._write_lock:
            held = self._switches.get(scope)
            if held is not None and held.command_id == command.command_id and command.issued_at == held.issued_at:
                return self._reject(Rejection.DUPLICATE, f"a copy of {held.command_id}, the command held")
            if held is not None and command.issued_at <= held.issued_at:
                return self._reject(
                    Rejection.REPLAY, f"issued_at {command.issued_at.isoformat()} is not newer than {held.command_id}"
                )
            updated = dict(self._switches)
            updated[scope] = ActiveSwitch.of(command)
            self._switches = updated
        if command.expires_at is not None and command.expires_at <= now:
            # Supersedes what the scope held, but is not in force.
            return self._reject(Rejection.EXPIRED, f"expired at {command.expires_at.isoformat()}")
        self.accepted += 1
        return ApplyResult(True)

    def reject(self, rejection: Rejection, detail: str = "") -> ApplyResult:
        """Count a record the listener could not even turn into a command (bad bytes, tombstone)."""
        return self._reject(rejection, detail)

    def _reject(self, rejection: Rejection, detail: str) -> ApplyResult:
        self.rejected[rejection.value] += 1
        return ApplyResult(False, rejection, detail)

    def mark_contact(self, at: float | None = None) -> None:
        """The feed confirmed it is current with the topic, now or at monotonic time ``at``."""
        at = self._monotonic() if at is None else at
        if self.last_contact is None or at > self.last_contact:
            self.last_contact = at

    # -- reads (the agent's threads) ---------------------------------------------------------

    def switches(self) -> Mapping[str, ActiveSwitch]:
        """Every scope's held command (in force or not), as an immutable snapshot."""
        return MappingProxyType(self._switches)

    def in_force(self, now: datetime | None = None) -> list[ActiveSwitch]:
        now = now or self._clock()
        return [s for s in self._switches.values() if s.in_force(now)]

    def is_fresh(self, limit_s: float) -> bool:
        """True when the state is loaded and was confirmed current within the last ``limit_s`` seconds."""
        last = self.last_contact
        return last is not None and self.ready.is_set() and self._monotonic() - last <= limit_s

    def staleness(self) -> float | None:
        """Seconds since the feed last confirmed it is current; None if it never has."""
        if self.last_contact is None:
            return None
        return self._monotonic() - self.last_contact

    def evaluate(self, call: CallIdentity, risk: Risk, now: datetime | None = None) -> Verdict:
        """The switches in force that govern ``call`` at ``risk``."""
        return self.evaluate_keys(matching_scopes(call), risk, now)

    def evaluate_keys(self, keys: tuple[str, ...], risk: Risk, now: datetime | None = None) -> Verdict:
        """:meth:`evaluate` for a call whose matching scope keys are known (``matching_scopes``)."""
        switches = self._switches
        if not switches:
            return CLEAR
        held = [s for s in map(switches.get, keys) if s is not None]
        if not held:
            return CLEAR
        now = now or self._clock()
        frozen: ActiveSwitch | None = None
        autonomy: ActiveSwitch | None = None
        approval: ActiveSwitch | None = None
        throttles: list[ActiveSwitch] = []
        level = RISK_ORDER[Risk(risk)]
        for s in held:
            if not s.in_force(now):
                continue
            if s.action is KillSwitchAction.FREEZE_TOOL:
                frozen = frozen or s
            elif s.action is KillSwitchAction.DISABLE_AUTONOMY:
                autonomy = autonomy or s
            elif s.action is KillSwitchAction.FORCE_APPROVAL:
                if level >= RISK_ORDER[s.min_risk or Risk.LOW]:
                    approval = approval or s
            elif s.action is KillSwitchAction.THROTTLE:
                throttles.append(s)
        if frozen is None and autonomy is None and approval is None and not throttles:
            return CLEAR
        return Verdict(frozen=frozen, approval=autonomy or approval, throttles=tuple(throttles))


class Throttle:
    """At most ``per_minute`` calls in any sliding 60-second window (exact, not a token-bucket estimate)."""

    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def try_acquire(self) -> float | None:
        """Take a slot and return None, or return the seconds until one frees up."""
        now = self._monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] >= 60.0:
                self._calls.popleft()
            if len(self._calls) < self.per_minute:
                self._calls.append(now)
                return None
            return 60.0 - (now - self._calls[0]) if self._calls else 60.0

    def release(self) -> None:
        """Give back the newest slot (the call did not run after all)."""
        with self._lock:
            if self._calls:
                self._calls.pop()


class Throttles:
    """One :class:`Throttle` per scope; a new throttle command for a scope starts a fresh window."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._by_scope: dict[str, tuple[str, Throttle]] = {}
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def acquire(self, switches: tuple[ActiveSwitch, ...]) -> tuple[ActiveSwitch, float] | list[Throttle]:
        """Take a slot from every throttle and return them (for :meth:`release`); on the first that is full,
        give the others back and return (that switch, seconds until a slot frees up)."""
        taken: list[Throttle] = []
        for s in switches:
            throttle = self._get(s)
            wait = throttle.try_acquire()
            if wait is not None:
                for t in taken:
                    t.release()
                return s, wait
            taken.append(throttle)
        return taken

    @staticmethod
    def release(taken: list[Throttle]) -> None:
        for t in taken:
            t.release()

    def _get(self, s: ActiveSwitch) -> Throttle:
        held = self._by_scope.get(s.scope)
        if held is not None and held[0] == s.command_id:
            return held[1]
        with self._lock:
            held = self._by_scope.get(s.scope)
            if held is None or held[0] != s.command_id:
                held = (s.command_id, Throttle(int(s.throttle_per_minute or 0), self._monotonic))
                self._by_scope[s.scope] = held
            return held[1]


__all__ = [
    "CLEAR",
    "RISK_ORDER",
    "ActiveSwitch",
    "ApplyResult",
    "KillSwitchState",
    "Rejection",
    "Throttle",
    "Throttles",
    "Verdict",
]
