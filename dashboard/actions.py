"""What a dashboard user can change: trip or reset a kill switch, acknowledge an alert.

Every action is one function taking the acting :class:`Actor` first, and every one passes
through :func:`authorize` before it touches anything, so a role check (issue 11: sign-in and
roles) wraps all of them in one place with :func:`set_authorizer`; the server checks, not
just the buttons; every decision, allowed or refused, is audited in ``dashboard_audit``.
Trips and resets are built, signed and published exactly like the on-call CLI (``new_command``, then
the kill switch's ``CommandPublisher`` with the key of ``TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH`` and
``KillSwitchConfig`` for the broker and topic): delivered to the compacted kill-switch topic keyed by
scope (or to an in-process command sink registered by the embedded demo), then recorded in
``killswitch_audit`` with the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tripwire.dashboard import data
from tripwire.dashboard.errors import ActionError, NotAuthorizedError

if TYPE_CHECKING:
    from tripwire.killswitch import CommandPublisher, KillSwitchConfig
    from tripwire.schemas import KillSwitchCommand

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 500


class Action(StrEnum):
    TRIP = "killswitch.trip"
    RESET = "killswitch.reset"
    ACK = "alert.ack"
    SQL = "sql.query"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``name`` is the signed-in email (or the operator in development mode), ``role`` the role
    the roles file gives it (None: no role), ``authenticated`` whether ``name`` came from sign-in."""

    name: str
    role: str | None = None
    authenticated: bool = False


Authorizer = Callable[[Actor, Action, Mapping[str, Any]], None]


def allow_all(actor: Actor, action: Action, details: Mapping[str, Any]) -> None:
    """The default for a host that installs no check; ``server.serve`` always installs the role check."""


_authorizer: Authorizer = allow_all


def set_authorizer(authorizer: Authorizer | None) -> None:
    """Install the check every action runs first; it raises ``NotAuthorizedError`` to refuse (None: allow all)."""
    global _authorizer
    _authorizer = authorizer or allow_all


def authorize(actor: Actor, action: Action, details: Mapping[str, Any] | None = None) -> None:
    """Run the installed check, then audit the decision in ``dashboard_audit`` (allowed or refused).

    An allowed action whose audit row cannot be written is refused (nothing unaudited happens)."""
    details = details or {}
    try:
        _authorizer(actor, action, details)
    except NotAuthorizedError as e:
        log.warning("dashboard action refused action=%s actor=%s role=%s", action.value, actor.name, actor.role)
        try:
            audit_action(actor, action, details, decision="refused", reason=str(e))
        except ActionError:
            log.exception("refusal not audited action=%s actor=%s", action.value, actor.name)
        raise
    audit_action(actor, action, details, decision="allowed")


def audit_action(actor: Actor, action: Action, details: Mapping[str, Any], *, decision: str, reason: str = "") -> None:
    """One ``dashboard_audit`` row: who (the signed-in identity), with which role, did or tried what."""
    import json

    row = (datetime.now(UTC), actor.name, actor.role or "", actor.authenticated, action.value, decision, reason,
           json.dumps(dict(details), default=str, sort_keys=True))
    try:
        data.get_store().insert(
            "dashboard_audit",
            ("at", "actor", "role", "authenticated", "action", "decision", "reason", "details"),
            [row],
        )
    except Exception as e:
        raise ActionError(f"the action could not be audited, so it was not carried out: {e}") from e


# -- kill switch --------------------------------------------------------------------------------


def _ks_config() -> KillSwitchConfig:
    from tripwire.killswitch import KillSwitchConfig

    try:
        return KillSwitchConfig()
    except Exception as e:
        raise ActionError(f"kill-switch settings are invalid: {e}") from e


def _publisher(config: KillSwitchConfig) -> CommandPublisher:
    """The kill switch's one publisher, with the dashboard's signing key and timeout; it hands the signed command
    to the in-process command sink when the embedded demo registered one, else to Kafka."""
    from tripwire.killswitch import CommandPublisher

    if config.private_key_path is None:
        raise ActionError(
            "no signing key configured: run `tripwire keys generate` and set TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH "
            "before starting the dashboard"
        )
    try:
        return CommandPublisher(config, timeout_s=data.settings().publish_timeout_s,
                                client_id="tripwire-dashboard", sink=data.command_sink())
    except Exception as e:
        raise ActionError(f"cannot sign the command: {e}") from e


def _deliver(command: KillSwitchCommand, config: KillSwitchConfig) -> KillSwitchCommand:
    """Sign and deliver ``command`` (topic created first, keyed by scope, broker ack awaited); the signed command."""
    from tripwire.killswitch import CommandPublishError

    publisher = _publisher(config)
    try:
        return publisher.publish(command)
    except CommandPublishError as e:
        raise ActionError(str(e)) from e
    except Exception as e:
        raise ActionError(f"the kill-switch command could not be delivered: {type(e).__name__}: {e}") from e


def _audit(actor: Actor, command: KillSwitchCommand) -> None:
    from tripwire.sinks.rows import KILLSWITCH_AUDIT

    values = {"source": "dashboard", "actor": actor.name, **command.__dict__}
    row = [values[c] for c in KILLSWITCH_AUDIT.columns]
    row = [v.value if isinstance(v, StrEnum) else v for v in row]
    try:
        data.get_store().insert("killswitch_audit", KILLSWITCH_AUDIT.insert_columns, [(*row, "", 0, 0)])
    except Exception as e:
        raise ActionError(
            f"command {command.command_id} was delivered but its audit row could not be written: {e}"
        ) from e


def issue_command(
    actor: Actor,
    *,
    scope: str,
    action: str,
    reason: str,
    ttl: timedelta | str | None = None,
    min_risk: str | None = None,
    throttle_per_minute: int | None = None,
    alert_id: str | None = None,
) -> KillSwitchCommand:
    """Build, sign, deliver and audit one kill-switch command; returns the signed command."""
    from tripwire.killswitch import new_command, parse_duration

    is_reset = action == "resume"
    authorize(actor, Action.RESET if is_reset else Action.TRIP, {"scope": scope, "action": action})
    reason = (reason or "").strip()
    if not reason:
        raise ActionError("a reason is required")
    if action == "force_approval" and not min_risk:
        min_risk = "low"  # as the CLI: force approval for every tier unless told otherwise
    try:
        duration = parse_duration(ttl) if isinstance(ttl, str) else ttl
        command = new_command(
            scope=scope.strip(),
            action=action,
            reason=reason,
            issued_by=actor.name,
            ttl=duration,
            min_risk=min_risk or None,
            throttle_per_minute=throttle_per_minute,
            alert_id=alert_id or None,
        )
    except ValueError as e:
        raise ActionError(str(e)) from e
    config = _ks_config()
    signed = _deliver(command, config)
    _audit(actor, signed)
    log.info(
        "killswitch command issued command_id=%s scope=%s action=%s actor=%s",
        signed.command_id, signed.scope, signed.action.value, actor.name,
    )
    return signed


def trip_switch(actor: Actor, *, scope: str, action: str, reason: str, **kw: Any) -> KillSwitchCommand:
    if action == "resume":
        raise ActionError("use reset to resume a scope")
    return issue_command(actor, scope=scope, action=action, reason=reason, **kw)


def reset_switch(actor: Actor, *, scope: str, reason: str) -> KillSwitchCommand:
    return issue_command(actor, scope=scope, action="resume", reason=reason)


def disable_agent_autonomy(actor: Actor, *, agent_id: str, reason: str, ttl: str | None = None) -> KillSwitchCommand:
    """The on-call shortcut: ``disable_autonomy`` on ``agent:<agent_id>``."""
    return trip_switch(actor, scope=f"agent:{agent_id}", action="disable_autonomy", reason=reason, ttl=ttl or None)


# -- alerts -------------------------------------------------------------------------------------


def ack_alert(actor: Actor, *, tenant: str, incident_id: str, note: str = "") -> datetime:
    """Record that ``actor`` acknowledged an incident (``alert_acks``); returns the ack time."""
    authorize(actor, Action.ACK, {"tenant": tenant, "incident_id": incident_id})
    if not incident_id:
        raise ActionError("no incident selected")
    now = datetime.now(UTC)
    try:
        data.get_store().insert(
            "alert_acks",
            ("tenant", "incident_id", "acked_by", "acked_at", "note"),
            [(tenant, incident_id, actor.name, now, note.strip()[:MAX_NOTE_CHARS])],
        )
    except Exception as e:
        raise ActionError(f"the acknowledgement could not be stored: {e}") from e
    log.info("alert acknowledged incident_id=%s actor=%s", incident_id, actor.name)
    return now
