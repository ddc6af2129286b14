"""What a notification says, and how each channel puts it on the wire.

A :class:`Notification` is built from an ``Alert`` or a ``KillSwitchCommand`` and may fold a burst of
later records for the same incident (``grouped`` counts them; the newest state wins). Each channel
turns it into an :class:`HttpRequest`:

- ``webhook``: our JSON document, signed with HMAC-SHA256. Headers::

      X-Tripwire-Timestamp: <unix seconds>
      X-Tripwire-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>." + raw body)>
      X-Tripwire-Dedup-Key: <incident id>

  The receiver recomputes the HMAC over the timestamp, a dot and the exact body bytes, compares in
  constant time, and rejects timestamps older than its tolerance (:func:`verify_signature`), so a
  captured request cannot be replayed later. The timestamp is taken at each attempt.
- ``slack``: an incoming-webhook message (``text`` fallback + Block Kit ``blocks``).
- ``pagerduty``: Events API v2 (``routing_key``, ``event_action`` trigger|resolve,
  ``dedup_key`` = incident id, ``payload`` with summary/source/severity/timestamp/component/group/
  class/custom_details on trigger).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from tripwire.schemas import Alert, KillSwitchAction, KillSwitchCommand

SIGNATURE_HEADER = "X-Tripwire-Signature"
TIMESTAMP_HEADER = "X-Tripwire-Timestamp"
DEDUP_HEADER = "X-Tripwire-Dedup-Key"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
CHANNELS = ("webhook", "slack", "pagerduty")
_PD_SUMMARY_MAX = 1024
_SLACK_TEXT_MAX = 3000
_TRIP_SEVERITY = "critical"  # a kill-switch trip or reset always reaches on-call

Source = Literal["alert", "killswitch"]
Action = Literal["trigger", "resolve"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to people about one incident (``dedup_key``)."""

    source: Source
    dedup_key: str
    action: Action
    kind: str
    severity: str
    tenant: str | None
    agent_id: str | None
    scope: str
    summary: str
    timestamp: datetime
    record_id: str
    details: dict[str, Any] = field(default_factory=dict)
    grouped: int = 1
    """How many records (alerts or commands) this one delivery stands for."""

    def merge(self, newer: Notification) -> Notification:
        """The newer record's state, counting every record folded so far."""
        return replace(newer, grouped=self.grouped + newer.grouped)


def from_alert(alert: Alert) -> Notification:
    details: dict[str, Any] = {
        "alert_id": alert.alert_id,
        "incident_id": alert.incident_id,
        "status": alert.status,
        "observed": alert.observed,
        "threshold": alert.threshold,
        "count": alert.count,
        "agent_version": alert.agent_version,
        "tool_name": alert.tool_name,
        "run_id": alert.run_id,
        "credential_fingerprint": alert.credential_fingerprint,
        "window_start": _iso(alert.window_start),
        "window_end": _iso(alert.window_end),
        "evidence_event_ids": list(alert.evidence_event_ids),
        "evidence_trace_ids": list(alert.evidence_trace_ids),
        "created_at": _iso(alert.created_at),
    }
    return Notification(
        source="alert",
        dedup_key=alert.incident_id,
        action="resolve" if alert.status == "resolved" else "trigger",
        kind=alert.kind,
        severity=str(alert.severity),
        tenant=alert.tenant or None,
        agent_id=alert.agent_id,
        scope=alert.scope,
        summary=alert.summary or f"{alert.kind} on {alert.scope}",
        timestamp=alert.updated_at,
        record_id=alert.alert_id,
        details={k: v for k, v in details.items() if v is not None},
    )


def from_command(cmd: KillSwitchCommand) -> Notification:
    """A trip (any action but ``resume``) triggers ``killswitch:<scope>``; a resume resolves it."""
    resume = cmd.action is KillSwitchAction.RESUME
    agent = tenant = None
    head = cmd.scope.split("/", 1)[0]
    if head.startswith("agent:"):
        agent = head.removeprefix("agent:").split("@", 1)[0]
    elif head.startswith("tenant:"):
        tenant = head.removeprefix("tenant:")
    verb = "reset (resume)" if resume else f"tripped: {cmd.action.value}"
    details: dict[str, Any] = {
        "command_id": cmd.command_id,
        "action": cmd.action.value,
        "issued_by": cmd.issued_by,
        "issued_at": _iso(cmd.issued_at),
        "expires_at": _iso(cmd.expires_at),
        "min_risk": cmd.min_risk.value if cmd.min_risk else None,
        "throttle_per_minute": cmd.throttle_per_minute,
        "alert_id": cmd.alert_id,
        "key_id": cmd.key_id,
        "signed": cmd.signature is not None,
        "reason": cmd.reason,
    }
    return Notification(
        source="killswitch",
        dedup_key=f"killswitch:{cmd.scope}",
        action="resolve" if resume else "trigger",
        kind="killswitch",
        severity=_TRIP_SEVERITY,
        tenant=tenant,
        agent_id=agent,
        scope=cmd.scope,
        summary=f"Kill switch {verb} on {cmd.scope} by {cmd.issued_by}" + (f": {cmd.reason}" if cmd.reason else ""),
        timestamp=cmd.issued_at,
        record_id=cmd.command_id,
        details={k: v for k, v in details.items() if v is not None},
    )


# -- wire -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A POST of ``body``. ``sign`` (if any) returns extra headers computed at each attempt."""

    url: str
    body: bytes
    headers: dict[str, str]
    dedup_key: str
    sign: Callable[[bytes], dict[str, str]] | None = None

    def headers_for_attempt(self) -> dict[str, str]:
        return {**self.headers, **self.sign(self.body)} if self.sign else dict(self.headers)


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """``v1=<hex>`` over ``<timestamp>.<body>``."""
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={mac}"


def verify_signature(
    key: bytes,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """What a receiver does: the timestamp is recent and one of the header's ``v1=`` values matches."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    if age > tolerance_s:
        return False
    expected = signature(key, timestamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))


def webhook_document(n: Notification) -> dict[str, Any]:
    return {
        "version": 1,
        "source": n.source,
        "dedup_key": n.dedup_key,
        "action": n.action,
        "status": "resolved" if n.action == "resolve" else "firing",
        "kind": n.kind,
        "severity": n.severity,
        "tenant": n.tenant,
        "agent_id": n.agent_id,
        "scope": n.scope,
        "summary": n.summary,
        "timestamp": _iso(n.timestamp),
        "record_id": n.record_id,
        "grouped": n.grouped,
        "details": n.details,
    }


def webhook_request(n: Notification, url: str, hmac_key: bytes | None) -> HttpRequest:
    body = _dumps(webhook_document(n))
    headers = {"Content-Type": "application/json", DEDUP_HEADER: n.dedup_key}
    sign = None
    if hmac_key is not None:

        def sign(b: bytes, _key: bytes = hmac_key) -> dict[str, str]:
            ts = str(int(time.time()))
            return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(_key, ts, b)}

    return HttpRequest(url, body, headers, n.dedup_key, sign)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def slack_message(n: Notification) -> dict[str, Any]:
    state = "RESOLVED" if n.action == "resolve" else n.severity.upper()
    icon = ":white_check_mark:" if n.action == "resolve" else _SLACK_ICON.get(n.severity, ":grey_question:")
    grouped = f" (x{n.grouped})" if n.grouped > 1 else ""
    title = f"[{state}] {n.kind} on {n.scope}{grouped}"
    summary = _slack_escape(n.summary)[:_SLACK_TEXT_MAX]
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{_slack_escape(n.severity)}"},
        {"type": "mrkdwn", "text": f"*Kind*\n{_slack_escape(n.kind)}"},
        {"type": "mrkdwn", "text": f"*Tenant*\n{_slack_escape(n.tenant or '-')}"},
        {"type": "mrkdwn", "text": f"*Agent*\n{_slack_escape(n.agent_id or '-')}"},
    ]
    return {
        "text": f"{title}: {n.summary}"[:_SLACK_TEXT_MAX],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {summary}"}, "fields": fields},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"incident `{_slack_escape(n.dedup_key)}` · {_iso(n.timestamp)} · "
                        f"records grouped: {n.grouped}",
                    }
                ],
            },
        ],
    }


def slack_request(n: Notification, url: str) -> HttpRequest:
    return HttpRequest(url, _dumps(slack_message(n)), {"Content-Type": "application/json"}, n.dedup_key)


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_event(n: Notification, routing_key: str, source: str = "tripwire") -> dict[str, Any]:
    """An Events API v2 event. A resolve carries only routing_key, event_action and dedup_key."""
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": n.action, "dedup_key": n.dedup_key}
    if n.action == "resolve":
        return event
    summary = n.summary if n.grouped == 1 else f"{n.summary} ({n.grouped} alerts grouped)"
    event["payload"] = {
        "summary": summary[:_PD_SUMMARY_MAX],
        "source": n.agent_id or n.scope or source,
        "severity": _PD_SEVERITY.get(n.severity, "error"),
        "timestamp": _iso(n.timestamp),
        "component": n.agent_id or n.scope,
        "group": n.tenant or "-",
        "class": n.kind,
        "custom_details": {**n.details, "scope": n.scope, "grouped": n.grouped, "source": n.source},
    }
    event["client"] = "tripwire"
    return event


def pagerduty_request(n: Notification, routing_key: str, url: str = PAGERDUTY_URL) -> HttpRequest:
    body = _dumps(pagerduty_event(n, routing_key))
    return HttpRequest(url, body, {"Content-Type": "application/json"}, n.dedup_key)
