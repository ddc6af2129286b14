"""The demo's story feed: one line per injected incident, growing as its steps happen.

    runaway_loop injected on pr-agent → alert after 2.1 s → kill switch freeze_tool
    agent:pr-agent/tool:github.read_issue (policy) → 14 calls blocked → reset after TTL

The fleet reports incidents as they start, the embedded runtime reports the alerts it raises and
the commands it publishes, the block counter says how many calls each command stopped, and
:meth:`StoryFeed.tick` notices a switch whose TTL has passed. The terminal prints the lines; the
dashboard shows them as a panel in demo mode (with the alert, run and command ids to follow).
Plain Python, thread-safe: the fleet, the runtime's worker and the UI call it from their threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tripwire.schemas import Alert, KillSwitchCommand
from tripwire.sim.incidents import Incident

MATCH_GRACE_S = 5.0  # an alert stamped in event time may precede the wall-clock start slightly
MAX_LINES = 200


@dataclass
class Story:
    """What happened to one injected incident so far."""

    incident_id: str
    kind: str
    agent_id: str
    agents: tuple[str, ...]  # agents whose alert detects it (a shared credential names two)
    expected_alert: str | None
    injected_at: float
    tool: str | None = None
    alert_id: str | None = None
    alert_incident: str | None = None  # the pipeline's incident id of the alert (the Alerts page's key)
    alert_at: float | None = None
    run_ids: tuple[str, ...] = ()
    command_id: str | None = None
    action: str | None = None
    scope: str | None = None
    issued_by: str | None = None
    extended: bool = False
    expires_at: float | None = None
    blocked: int = 0
    reset_at: float | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Injected, detected and acted upon (an alert and a kill switch), or redacted (no alert kind)."""
        return self.expected_alert is None or (self.alert_id is not None and self.command_id is not None)

    def text(self) -> str:
        parts = [f"{self.kind} injected on {self.agent_id}" + (f" ({self.tool})" if self.tool else "")]
        if self.expected_alert is None:
            parts.append("redacted before storage (no alert kind)")
        if self.alert_at is not None:
            parts.append(f"alert {self.expected_alert} after {max(0.0, self.alert_at - self.injected_at):.1f} s")
        if self.command_id is not None:
            source = (self.issued_by or "").split(":", 1)[0]
            how = "extended" if self.extended else "kill switch"
            parts.append(f"{how} {self.action} {self.scope} ({source})")
            if self.action in ("freeze_tool", "throttle"):
                parts.append(f"{self.blocked} calls blocked")
            else:
                parts.append("calls need a human approval")
        if self.reset_at is not None:
            parts.append("reset after TTL")
        return " → ".join(parts)

    def row(self) -> dict[str, Any]:
        return {
            "at": datetime.fromtimestamp(self.injected_at, UTC),
            "story": self.text(),
            "incident": self.incident_id,
            "alert_id": self.alert_id,
            "alert_incident": self.alert_incident,
            "run_id": self.run_ids[0] if self.run_ids else None,
            "command_id": self.command_id,
            "complete": self.complete,
        }


class StoryFeed:
    def __init__(self, blocked: Callable[[str], int] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._blocked = blocked or (lambda _cid: 0)
        self._clock = clock
        self._lock = threading.Lock()
        self._stories: list[Story] = []
        self._alerts: list[tuple[Alert, float]] = []  # recent firing alerts, when seen
        self._commands: list[KillSwitchCommand] = []

    # -- what happens ---------------------------------------------------------------------------
    def incident(self, inc: Incident, started_epoch_s: float | None = None) -> None:
        agents = [inc.agent_id]
        other = inc.params.get("shares_with")
        if other:
            agents.append(str(other))
        story = Story(inc.incident_id or inc.kind, inc.kind, inc.agent_id, tuple(agents), inc.expected_alert,
                      started_epoch_s if started_epoch_s is not None else self._clock(), tool=inc.tool)
        with self._lock:
            self._stories.append(story)
            del self._stories[:-MAX_LINES]
            self._reconcile()

    def alert(self, alert: Alert) -> None:
        """The first firing alert of the expected kind on the incident's agents marks it detected (an
        alert may come before the fleet announces its incident: both are kept a while and matched)."""
        if alert.status != "firing":
            return
        with self._lock:
            self._alerts.append((alert, self._clock()))
            del self._alerts[:-MAX_LINES]
            self._reconcile()

    def command(self, cmd: KillSwitchCommand) -> None:
        """A command published for an alert of a story (policy trips carry the alert id)."""
        with self._lock:
            self._commands.append(cmd)
            del self._commands[:-MAX_LINES]
            self._reconcile()

    def _reconcile(self) -> None:
        for s in self._stories:
            if s.alert_id is None and s.expected_alert is not None:
                for alert, seen_at in self._alerts:
                    if self._matches(s, alert):
                        s.alert_id, s.alert_at = alert.alert_id, max(seen_at, s.injected_at)
                        s.alert_incident = alert.incident_id
                        s.run_ids = (alert.run_id,) if alert.run_id else ()
                        break
            if s.alert_id is not None and s.command_id is None:
                # the story's own alert, or a later alert of it (the policy may absorb the first one
                # into a trip already in force, see KillSwitchPolicy)
                mine = {a.alert_id for a, _ in self._alerts if self._matches(s, a)} | {s.alert_id}
                for cmd in self._commands:
                    if cmd.alert_id in mine:
                        s.command_id, s.action, s.scope = cmd.command_id, str(cmd.action), cmd.scope
                        s.issued_by = cmd.issued_by
                        s.extended = cmd.reason.startswith("[")
                        s.expires_at = cmd.expires_at.timestamp() if cmd.expires_at else None
                        break

    def tick(self) -> None:
        """Refresh the blocked counts and notice the switches whose TTL has passed."""
        now = self._clock()
        with self._lock:
            for s in self._stories:
                if s.command_id is None or s.reset_at is not None:
                    continue
                s.blocked = self._blocked(s.command_id)
                if s.expires_at is not None and now >= s.expires_at:
                    s.reset_at = now

    @staticmethod
    def _matches(s: Story, alert: Alert) -> bool:
        return (s.expected_alert == alert.kind and alert.agent_id in s.agents
                and alert.created_at.timestamp() >= s.injected_at - MATCH_GRACE_S)

    # -- reading --------------------------------------------------------------------------------
    def lines(self, last: int = 10) -> list[str]:
        with self._lock:
            return [s.text() for s in self._stories[-last:]]

    def rows(self) -> list[dict[str, Any]]:
        """Newest first, for the dashboard's panel."""
        self.tick()
        with self._lock:
            return [s.row() for s in reversed(self._stories)]

    def stories(self) -> list[Story]:
        with self._lock:
            return list(self._stories)


__all__ = ["Story", "StoryFeed"]
