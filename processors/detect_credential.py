"""shared_credential: one credential fingerprint used by more than ``max_agents`` agents.

State is keyed by the fingerprint (the runtime repartitions by it); it remembers, per agent,
the first event seen with that credential, which becomes the alert's evidence. It reads a
:class:`CredentialUse` (what it needs of that event), so the runs stage can ship uses in a partial.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tripwire.processors.incidents import Occurrence
from tripwire.processors.policy import SharedCredentialPolicy


class CredentialUse(NamedTuple):
    """An event's use of a credential: the fields the detector reads (JSON-able as a list)."""

    tenant: str
    agent_id: str
    agent_version: str
    run_id: str
    credential_fingerprint: str | None
    event_id: str
    trace_id: str

    @classmethod
    def of(cls, event: Any) -> CredentialUse:
        return cls(
            event.tenant,
            event.agent_id,
            event.agent_version,
            event.run_id,
            event.credential_fingerprint,
            event.event_id,
            event.trace_id,
        )


class CredentialDetector:
    def __init__(self, policy: SharedCredentialPolicy) -> None:
        self.policy = policy

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"agents": {}}

    def on_event(self, state: dict[str, Any], event: Any) -> list[Occurrence]:
        return self.on_use(state, CredentialUse.of(event))

    def on_use(self, state: dict[str, Any], event: CredentialUse) -> list[Occurrence]:
        fp = event.credential_fingerprint
        if fp is None or not self.policy.enabled:
            return []
        agents: dict[str, list[str]] = state["agents"]
        key = f"{event.tenant}/{event.agent_id}"
        if key in agents:
            return []
        agents[key] = [event.event_id, event.trace_id]
        if len(agents) <= self.policy.max_agents:
            return []
        names = sorted(agents)
        return [
            Occurrence(
                kind="shared_credential",
                key=f"shared_credential|{fp}",
                severity=self.policy.severity,
                scope=f"credential:{fp}",
                tenant=event.tenant,
                agent_id=event.agent_id,
                agent_version=event.agent_version,
                run_id=event.run_id,
                credential_fingerprint=fp,
                event_id=event.event_id,
                trace_id=event.trace_id,
                observed=float(len(agents)),
                threshold=float(self.policy.max_agents),
                summary=f"credential {fp} is used by {len(agents)} agents: {', '.join(names[:5])}"
                + (", ..." if len(names) > 5 else ""),
            )
        ]
