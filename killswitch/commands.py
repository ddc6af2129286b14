"""Building kill-switch commands: durations, validation of the action's arguments, fresh ids."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from tripwire.killswitch.scopes import parse_scope
from tripwire.schemas import KillSwitchCommand
from tripwire.schemas.enums import KillSwitchAction, Risk

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
MAX_REASON_CHARS = 500


def parse_duration(text: str | float | int | None) -> timedelta | None:
    """``"30m"``, ``"1h"``, ``"45s"``, ``"2d"``, ``"250ms"`` or a number of seconds; None/"" stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION_RE.match(str(text))
        if m is None:
            raise ValueError(f"invalid duration {text!r}; expected a number with an optional unit ms|s|m|h|d, e.g. 30m")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return timedelta(seconds=seconds)


def new_command(
    *,
    scope: str,
    action: KillSwitchAction | str,
    reason: str,
    issued_by: str,
    ttl: timedelta | None = None,
    min_risk: Risk | str | None = None,
    throttle_per_minute: int | None = None,
    alert_id: str | None = None,
    now: datetime | None = None,
) -> KillSwitchCommand:
    """An unsigned command with a fresh id and nonce; raises ValueError (a ScopeError for scopes) on bad input."""
    action = KillSwitchAction(action)
    canonical_scope = str(parse_scope(scope))
    if action is KillSwitchAction.THROTTLE:
        if throttle_per_minute is None or throttle_per_minute < 1:
            raise ValueError("throttle needs a per-minute limit of at least 1")
    elif throttle_per_minute is not None:
        raise ValueError(f"a per-minute limit only applies to throttle, not {action.value}")
    if min_risk is not None and action is not KillSwitchAction.FORCE_APPROVAL:
        raise ValueError(f"min_risk only applies to force_approval, not {action.value}")
    if action is KillSwitchAction.RESUME and ttl is not None:
        raise ValueError("resume takes no ttl")
    issued_at = now or datetime.now(UTC)
    return KillSwitchCommand(
        command_id=str(uuid.uuid4()),
        scope=canonical_scope,
        action=action,
        min_risk=Risk(min_risk) if min_risk is not None else None,
        throttle_per_minute=throttle_per_minute,
        issued_at=issued_at,
        expires_at=issued_at + ttl if ttl is not None else None,
        reason=reason[:MAX_REASON_CHARS],
        alert_id=alert_id,
        issued_by=issued_by,
        nonce=secrets.token_hex(16),
    )


__all__ = ["new_command", "parse_duration"]
