"""Incidents: deduplication and cooldown for detector firings.

A detector reports *occurrences* under a dedup key (e.g. ``tool_error_rate|acme|agent|search``).
The first occurrence opens an incident and emits an Alert; later occurrences fold into the same
incident (``count`` grows, evidence and the observed value are updated) and re-emit the alert at
most once per ``update_interval_s``. With no occurrence for ``cooldown_s`` the incident resolves
(a final alert with status ``resolved``); a later occurrence opens a new incident.

``incident_id`` is a UUIDv5 of the dedup key and the first occurrence's event id, and
``alert_id`` a UUIDv5 of the incident id and its revision: replaying the same events gives the
same ids, so the alerts topic (keyed by incident_id) stays idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from tripwire.processors._time import utc
from tripwire.processors.policy import IncidentsPolicy

_NS = uuid.UUID("6f1c6c8e-3c55-4f0e-9a53-2c1f7d4e9b10")


@dataclass
class Occurrence:
    """One detector firing; the fields an Alert needs besides the incident bookkeeping."""

    kind: str
    key: str
    severity: str
    scope: str
    tenant: str
    observed: float
    threshold: float
    summary: str
    event_id: str
    trace_id: str | None = None
    agent_id: str | None = None
    agent_version: str | None = None
    tool_name: str | None = None
    run_id: str | None = None
    credential_fingerprint: str | None = None
    window_start: float | None = None
    window_end: float | None = None
    evidence: bool = True  # False when event_id names a finding, not a real event


@dataclass
class Incident:
    incident_id: str
    occurrence: dict[str, Any]
    count: int
    evidence_event_ids: list[str]
    evidence_trace_ids: list[str]
    created_at: float
    updated_at: float
    last_seen: float
    revision: int = 0
    emitted_revision: int = 0
    last_emitted_at: float = 0.0
    event_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["occurrence"] = dict(self.occurrence)
        d["evidence_event_ids"] = list(self.evidence_event_ids)
        d["evidence_trace_ids"] = list(self.evidence_trace_ids)
        d["event_ids"] = list(self.event_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Incident:
        return cls(**d)


class IncidentBook:
    """The open incidents of one state key (a run, an agent, a credential)."""

    def __init__(self, policy: IncidentsPolicy, incidents: dict[str, Incident] | None = None) -> None:
        self.policy = policy
        self.incidents: dict[str, Incident] = incidents or {}

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() for k, v in self.incidents.items()}

    @classmethod
    def from_dict(cls, policy: IncidentsPolicy, d: dict[str, Any] | None) -> IncidentBook:
        return cls(policy, {k: Incident.from_dict(v) for k, v in (d or {}).items()})

    def __bool__(self) -> bool:
        return bool(self.incidents)

    def occur(self, occ: Occurrence, now: float) -> list[Any]:
        """Fold one occurrence in; returns the alerts to publish (zero or one)."""
        inc = self.incidents.get(occ.key)
        if inc is not None and occ.event_id in inc.event_ids:
            return []  # the same event reported twice (replay): nothing new
        if inc is None:
            inc = Incident(
                incident_id=str(uuid.uuid5(_NS, f"{occ.key}|{occ.event_id}")),
                occurrence=asdict(occ),
                count=0,
                evidence_event_ids=[],
                evidence_trace_ids=[],
                created_at=now,
                updated_at=now,
                last_seen=now,
            )
            self.incidents[occ.key] = inc
        inc.count += 1
        inc.occurrence = asdict(occ)
        inc.updated_at = inc.last_seen = now
        inc.revision += 1
        cap = self.policy.max_evidence
        inc.event_ids = [*inc.event_ids[-(4 * cap - 1) :], occ.event_id]
        if occ.evidence and occ.event_id not in inc.evidence_event_ids and len(inc.evidence_event_ids) < cap:
            inc.evidence_event_ids.append(occ.event_id)
        if occ.trace_id and occ.trace_id not in inc.evidence_trace_ids and len(inc.evidence_trace_ids) < cap:
            inc.evidence_trace_ids.append(occ.trace_id)
        if inc.emitted_revision == 0 or now - inc.last_emitted_at >= self.policy.update_interval_s:
            return [self._emit(inc, now, "firing")]
        return []

    def tick(self, now: float) -> list[Any]:
        """Publish pending updates whose interval passed; resolve incidents past their cooldown."""
        out: list[Any] = []
        for key in list(self.incidents):
            inc = self.incidents[key]
            if now - inc.last_seen >= self.policy.cooldown_s:
                out.append(self._emit(inc, now, "resolved"))
                del self.incidents[key]
            elif inc.revision > inc.emitted_revision and now - inc.last_emitted_at >= self.policy.update_interval_s:
                out.append(self._emit(inc, now, "firing"))
        return out

    def due(self) -> float | None:
        """The earliest time at which :meth:`tick` may emit something (None: no incident open)."""
        p = self.policy
        due: float | None = None
        for inc in self.incidents.values():
            t = inc.last_seen + p.cooldown_s
            if inc.revision > inc.emitted_revision:
                t = min(t, inc.last_emitted_at + p.update_interval_s)
            if due is None or t < due:
                due = t
        return due

    def resolve_all(self, now: float) -> list[Any]:
        out = [self._emit(inc, now, "resolved") for inc in self.incidents.values()]
        self.incidents.clear()
        return out

    @staticmethod
    def _emit(inc: Incident, now: float, status: str) -> Any:
        from tripwire.schemas import Alert

        inc.emitted_revision = inc.revision
        inc.last_emitted_at = now
        o = inc.occurrence
        revision = inc.revision + (1 if status == "resolved" else 0)
        return Alert(
            alert_id=str(uuid.uuid5(_NS, f"{inc.incident_id}|{revision}|{status}")),
            incident_id=inc.incident_id,
            kind=o["kind"],
            severity=o["severity"],
            scope=o["scope"],
            tenant=o["tenant"],
            agent_id=o["agent_id"],
            agent_version=o["agent_version"],
            tool_name=o["tool_name"],
            run_id=o["run_id"],
            credential_fingerprint=o["credential_fingerprint"],
            observed=o["observed"],
            threshold=o["threshold"],
            window_start=utc(o["window_start"]) if o["window_start"] is not None else None,
            window_end=utc(o["window_end"]) if o["window_end"] is not None else None,
            count=inc.count,
            evidence_event_ids=list(inc.evidence_event_ids),
            evidence_trace_ids=list(inc.evidence_trace_ids),
            summary=o["summary"],
            status=status,
            created_at=utc(inc.created_at),
            updated_at=utc(max(now, inc.created_at)),
        )
