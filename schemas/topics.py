"""Kafka topic names of the contract. Keys: events and runs by run_id, metrics by window key,
alerts by incident_id, kill switch (compacted) by scope."""

from __future__ import annotations

from dataclasses import dataclass

EVENTS = "tripwire.events.v1"
RUNS = "tripwire.runs.v1"
METRICS = "tripwire.metrics.v1"
ALERTS = "tripwire.alerts.v1"
KILLSWITCH = "tripwire.killswitch.v1"
DLQ = "tripwire.dlq.v1"


@dataclass(frozen=True, slots=True)
class Topics:
    """All six topic names, optionally prefixed (tests use uuid prefixes)."""

    events: str = EVENTS
    runs: str = RUNS
    metrics: str = METRICS
    alerts: str = ALERTS
    killswitch: str = KILLSWITCH
    dlq: str = DLQ

    def all(self) -> tuple[str, ...]:
        return (self.events, self.runs, self.metrics, self.alerts, self.killswitch, self.dlq)


def topic_names(prefix: str = "") -> Topics:
    """Topic names with ``prefix`` joined by a dot, e.g. ``t_ab12.tripwire.events.v1``; no prefix = the real names."""
    if not prefix:
        return Topics()
    p = prefix if prefix.endswith(".") else prefix + "."
    return Topics(p + EVENTS, p + RUNS, p + METRICS, p + ALERTS, p + KILLSWITCH, p + DLQ)
