"""The kill-switch policy operator: alerts in, signed kill-switch commands out.

Plain Python (no faust, no Kafka): the faust agent in ``killswitch_agent.py`` and the embedded
runtime both call :meth:`KillSwitchPolicy.process`. The rules come from YAML
(``killswitch_policy.yaml`` holds the documented defaults). The operator's only state is the
set of incidents whose trip is still in force, as plain dicts (:meth:`to_state` /
:meth:`from_state`), so a worker restores it from a changelog.

One incident, one trip: an incident trips at most once while its switch is in force. A *new*
incident of the same cause (the same rule) on a scope whose trip is still in force extends that
trip in place: the policy re-issues the same command (same ``command_id``, a newer ``issued_at``,
so agents' kill-switch state accepts it, and a later ``expires_at``) with the count of incidents in
its reason, so the audit shows one trip (``killswitch_history`` groups by ``command_id`` and counts
the issues). Within 5% of the TTL after the last issue, a re-issue would add next to nothing: the
incident is counted on the trip and nothing is signed (a burst of per-run incidents, e.g. runaway
loops, costs one command). Another rule on a scope already held is tripped only when its action is
stronger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tripwire.killswitch import (
    ActiveSwitch,
    CommandSigner,
    ScopeError,
    new_command,
    parse_duration,
    parse_scope,
    scope_text,
)
from tripwire.processors.errors import PolicyError
from tripwire.schemas import Alert, KillSwitchCommand
from tripwire.schemas.enums import KillSwitchAction, Risk, Severity

log = logging.getLogger(__name__)

DEFAULT_POLICY_FILE = "killswitch_policy.yaml"
SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
ScopeTemplate = Literal["agent", "agent_version", "agent_tool", "tool", "tenant", "credential", "global", "alert"]


class PolicyRule(BaseModel):
    """One line of the policy: alerts of ``kind`` at ``min_severity`` or above trip ``action`` on ``scope``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    min_severity: Severity = Severity.WARNING
    action: KillSwitchAction
    scope: ScopeTemplate
    ttl: timedelta | None = None
    min_risk: Risk | None = None
    per_minute: int | None = Field(default=None, ge=1)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> timedelta | None:
        return value if isinstance(value, timedelta) else parse_duration(value)

    @model_validator(mode="after")
    def _arguments(self) -> PolicyRule:
        if self.action is KillSwitchAction.RESUME:
            raise ValueError("a policy rule cannot resume; resets are for humans")
        if self.action is KillSwitchAction.THROTTLE and self.per_minute is None:
            raise ValueError("a throttle rule needs per_minute")
        if self.action is not KillSwitchAction.THROTTLE and self.per_minute is not None:
            raise ValueError("per_minute only applies to throttle")
        if self.min_risk is not None and self.action is not KillSwitchAction.FORCE_APPROVAL:
            raise ValueError("min_risk only applies to force_approval")
        return self

    def matches(self, alert: Alert) -> bool:
        return alert.kind == self.kind and SEVERITY_ORDER[Severity(alert.severity)] >= SEVERITY_ORDER[self.min_severity]

    def scope_for(self, alert: Alert) -> str:
        """The scope this rule trips for ``alert``; ScopeError when the alert lacks a field the scope needs."""
        if self.scope == "alert":
            return str(parse_scope(alert.scope))
        return scope_text(
            self.scope,
            tenant=alert.tenant,
            agent=alert.agent_id,
            version=alert.agent_version,
            tool=alert.tool_name,
            credential=alert.credential_fingerprint,
        )


class KillSwitchPolicyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[PolicyRule, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> KillSwitchPolicyConfig:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {dupes}")
        return self


def load_killswitch_policy(path: Path | str | None = None) -> KillSwitchPolicyConfig:
    """The policy in ``path``, or the shipped defaults; PolicyError names the failing field."""
    if path is None:
        return default_killswitch_policy()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"cannot read the kill-switch policy {path}: {e.strerror}") from e
    return _parse(text, str(path))


@cache
def default_killswitch_policy() -> KillSwitchPolicyConfig:
    text = resources.files("tripwire.processors").joinpath(DEFAULT_POLICY_FILE).read_text(encoding="utf-8")
    return _parse(text, DEFAULT_POLICY_FILE)


def _parse(text: str, origin: str) -> KillSwitchPolicyConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"{origin} is not valid YAML: {e}") from e
    try:
        return KillSwitchPolicyConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise PolicyError(f"{origin}: {where}: {first['msg']}") from e


_STRENGTH = {
    KillSwitchAction.THROTTLE: 0,
    KillSwitchAction.FORCE_APPROVAL: 1,
    KillSwitchAction.DISABLE_AUTONOMY: 2,
    KillSwitchAction.FREEZE_TOOL: 3,
}
_RISK = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}
ABSORB_FRACTION = 0.05  # a same-cause incident within this fraction of the TTL after the last issue is absorbed


def covers(held: ActiveSwitch, rule: PolicyRule, now: datetime) -> bool:
    """True when the switch ``held`` on a scope is in force, at least as strict as ``rule``'s action and
    lasts at least as long as the rule's TTL would."""
    if not held.in_force(now):
        return False
    if held.expires_at is not None and (rule.ttl is None or held.expires_at < now + rule.ttl):
        return False
    if _STRENGTH[held.action] != _STRENGTH[rule.action]:
        return _STRENGTH[held.action] > _STRENGTH[rule.action]
    if rule.action is KillSwitchAction.FORCE_APPROVAL:
        return _RISK[held.min_risk or Risk.LOW] <= _RISK[rule.min_risk or Risk.LOW]
    if rule.action is KillSwitchAction.THROTTLE:
        return (held.throttle_per_minute or 0) <= (rule.per_minute or 0)
    return True


@dataclass(frozen=True, slots=True)
class Trip:
    """An incident's trip that may still be in force."""

    incident_id: str
    scope: str
    command_id: str
    alert_id: str
    expires_at: datetime | None
    rule: str = ""  # the policy rule that tripped it ("" in state written before rules were recorded)
    action: str = ""
    issued_at: datetime | None = None
    count: int = 1  # incidents this trip covers (it was extended count - 1 times)

    def in_force(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


class KillSwitchPolicy:
    """Maps alerts to signed kill-switch commands, one trip per incident while it is in force."""

    def __init__(
        self,
        config: KillSwitchPolicyConfig | None = None,
        signer: CommandSigner | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        current: Callable[[str], ActiveSwitch | None] | None = None,
    ) -> None:
        self.config = config or default_killswitch_policy()
        self._signer = signer
        self._clock = clock
        self._current = current
        self._trips: dict[str, Trip] = {}
        self.tripped = 0
        self.deduplicated = 0
        self.unscoped = 0
        self.covered = 0
        self.extended = 0
        self.absorbed = 0

    def rule_for(self, alert: Alert) -> PolicyRule | None:
        return next((r for r in self.config.rules if r.matches(alert)), None)

    def process(self, alert: Alert, now: datetime | None = None) -> list[KillSwitchCommand]:
        """The commands ``alert`` trips (signed when the policy has a signer): zero or one."""
        now = now or self._clock()
        self._expire(now)
        if alert.status != "firing":
            return []
        rule = self.rule_for(alert)
        if rule is None:
            return []
        held = self._trips.get(alert.incident_id)
        if held is not None and held.in_force(now):
            self.deduplicated += 1
            return []
        try:
            scope = rule.scope_for(alert)
        except ScopeError as e:
            self.unscoped += 1
            log.warning(
                "killswitch policy cannot scope alert rule=%s alert_id=%s error=%s", rule.name, alert.alert_id, e
            )
            return []
        held_switch = self._current(scope) if self._current is not None else None
        if held_switch is not None and covers(held_switch, rule, now):
            # A switch at least as strong and as long already holds the scope (often a human's):
            # replacing it with the policy's would weaken it (the topic keeps one command per scope).
            self.covered += 1
            return []
        on_scope = self._scope_trip(scope, now)
        if on_scope is not None and on_scope.rule != rule.name and (
            _STRENGTH[rule.action] <= _strength_of(on_scope.action)
        ):
            self.covered += 1  # another cause holds the scope at least as strictly
            return []
        extend = on_scope if on_scope is not None and on_scope.rule == rule.name else None
        count = extend.count + 1 if extend is not None else 1
        if (extend is not None and extend.issued_at is not None and rule.ttl is not None
                and now - extend.issued_at < rule.ttl * ABSORB_FRACTION):
            # A re-issue now would lengthen the trip by under 5% of its TTL: count the incident on the
            # trip (the next re-issue's reason carries the count) and sign nothing.
            self._trips[alert.incident_id] = Trip(
                alert.incident_id, scope, extend.command_id, extend.alert_id, extend.expires_at,
                rule=rule.name, action=extend.action, issued_at=extend.issued_at, count=count,
            )
            self.absorbed += 1
            return []
        if extend is not None and extend.issued_at is not None and now <= extend.issued_at:
            now = extend.issued_at + timedelta(microseconds=1)  # a re-issue must be newer to be accepted
        reason = f"{alert.kind} ({alert.severity}): {alert.summary}"
        if count > 1:
            reason = f"[{count} incidents] {reason}"
        command = new_command(
            scope=scope,
            action=rule.action,
            reason=reason,
            issued_by=f"policy:{rule.name}",
            ttl=rule.ttl,
            min_risk=rule.min_risk,
            throttle_per_minute=rule.per_minute,
            alert_id=alert.alert_id,
            now=now,
        )
        if extend is not None:
            command = command.model_copy(update={"command_id": extend.command_id})
        if self._signer is not None:
            command = self._signer.sign(command)
        self._trips[alert.incident_id] = Trip(
            alert.incident_id, scope, command.command_id, alert.alert_id, command.expires_at,
            rule=rule.name, action=rule.action.value, issued_at=command.issued_at, count=count,
        )
        self.tripped += 1  # commands issued, extensions included
        if extend is not None:
            self.extended += 1
        log.info(
            "killswitch policy %s rule=%s scope=%s action=%s alert_id=%s incident_id=%s incidents=%d",
            "extend" if extend is not None else "trip",
            rule.name,
            scope,
            rule.action.value,
            alert.alert_id,
            alert.incident_id,
            count,
        )
        return [command]

    def _scope_trip(self, scope: str, now: datetime) -> Trip | None:
        """The newest trip in force on ``scope`` (the one its agents hold)."""
        best: Trip | None = None
        for t in self._trips.values():
            if t.scope == scope and t.in_force(now) and (best is None or _newer(t, best)):
                best = t
        return best

    def _expire(self, now: datetime) -> None:
        if self._trips:
            for incident in [i for i, t in self._trips.items() if not t.in_force(now)]:
                del self._trips[incident]

    # -- state (for changelog-backed tables) ----------------------------------------------

    def trips(self) -> dict[str, Trip]:
        return dict(self._trips)

    def to_state(self) -> dict[str, dict[str, Any]]:
        return {i: _trip_to_dict(t) for i, t in self._trips.items()}

    def load_state(self, state: dict[str, dict[str, Any]]) -> None:
        self._trips = {i: _trip_from_dict(i, d) for i, d in state.items()}

    def trip_state(self, incident_id: str) -> dict[str, Any] | None:
        """One incident's state (for a table keyed by incident_id); None when it has no trip in force."""
        trip = self._trips.get(incident_id)
        return _trip_to_dict(trip) if trip is not None else None

    def restore_trip(self, incident_id: str, state: dict[str, Any] | None) -> None:
        if state is None:
            self._trips.pop(incident_id, None)
        else:
            self._trips[incident_id] = _trip_from_dict(incident_id, state)


def _strength_of(action: str) -> int:
    try:
        return _STRENGTH.get(KillSwitchAction(action), -1)
    except ValueError:
        return -1  # a trip restored from state that recorded no action


def _newer(a: Trip, b: Trip) -> bool:
    epoch = datetime.min.replace(tzinfo=UTC)
    return (a.issued_at or epoch, a.count) > (b.issued_at or epoch, b.count)


def _trip_to_dict(t: Trip) -> dict[str, Any]:
    return {
        "scope": t.scope,
        "command_id": t.command_id,
        "alert_id": t.alert_id,
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "rule": t.rule,
        "action": t.action,
        "issued_at": t.issued_at.isoformat() if t.issued_at else None,
        "count": t.count,
    }


def _trip_from_dict(incident_id: str, d: dict[str, Any]) -> Trip:
    expires = datetime.fromisoformat(d["expires_at"]) if d.get("expires_at") else None
    issued = datetime.fromisoformat(d["issued_at"]) if d.get("issued_at") else None
    return Trip(incident_id, d["scope"], d["command_id"], d["alert_id"], expires, rule=str(d.get("rule", "")),
                action=str(d.get("action", "")), issued_at=issued, count=int(d.get("count", 1)))


__all__ = [
    "KillSwitchPolicy",
    "KillSwitchPolicyConfig",
    "PolicyRule",
    "Trip",
    "covers",
    "default_killswitch_policy",
    "load_killswitch_policy",
]
