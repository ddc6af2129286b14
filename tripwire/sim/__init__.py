"""The fleet simulator: realistic agents from the seed's workflows, driven through the real SDK,
with incidents injected on a schedule and recorded as ground truth."""

from tripwire.sim.clock import VirtualClock
from tripwire.sim.fleet import Fleet, FleetConfig, FleetStats
from tripwire.sim.incidents import INCIDENT_KINDS, Incident, IncidentSchedule
from tripwire.sim.workflows import AGENTS, AgentSpec, ToolSpec

__all__ = [
    "AGENTS",
    "INCIDENT_KINDS",
    "AgentSpec",
    "Fleet",
    "FleetConfig",
    "FleetStats",
    "Incident",
    "IncidentSchedule",
    "ToolSpec",
    "VirtualClock",
]
