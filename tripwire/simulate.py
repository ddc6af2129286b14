"""``tripwire simulate``: the demo's fleet as a load generator against a real Kafka.

Each agent identity gets its own Tracer with its own idempotent producer (as separate agent
processes would have), its own spool folder, and, when a public key is given, a real
:class:`~tripwire.producers.killswitch.KillSwitchGuard` listening to the compacted kill-switch topic,
so the simulated agents obey the switches the processors trip.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripwire.producers import Tracer, TracerConfig
from tripwire.producers.guard import ToolGuard
from tripwire.schemas import topic_names
from tripwire.sim import Fleet, FleetConfig
from tripwire.sim.guards import ChainGuard, RiskTierGuard, SimulatedApprover
from tripwire.sim.workflows import AgentSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulateConfig:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    rate: float = 1000.0
    duration_s: float = 60.0
    agents: int = 10
    seed: int = 7
    folder: Path = Path(".tripwire/simulate")
    public_key: Path | None = None
    incidents: bool = True


def simulate(config: SimulateConfig) -> dict[str, Any]:
    topics = topic_names(config.topic_prefix)
    guards: list[ToolGuard] = [RiskTierGuard()]
    ks_guard = None
    if config.public_key is not None:
        from tripwire.killswitch import KillSwitchConfig
        from tripwire.producers.killswitch import KillSwitchGuard

        ks_guard = KillSwitchGuard(KillSwitchConfig(bootstrap=config.bootstrap, topic=topics.killswitch,
                                                    public_key_path=config.public_key))
        guards.append(ks_guard)
    guard = ChainGuard(guards)
    approver = SimulatedApprover(config.seed)

    def factory(spec: AgentSpec, version: str) -> Tracer:
        cfg = TracerConfig(
            tenant=spec.tenant, agent_version=version, environment="simulate",
            kafka={"bootstrap": config.bootstrap, "topic": topics.events,
                   "client_id": f"tripwire-sim-{spec.agent_id}"},
            delivery={"spool_dir": str(config.folder / "spool" / f"{spec.agent_id}-{version}")},
        )
        return Tracer(cfg, guard=guard, approver=approver)

    fleet = Fleet(FleetConfig(duration_s=config.duration_s, rate=config.rate, agents=config.agents,
                              seed=config.seed, incidents=config.incidents,
                              ground_truth=config.folder / "ground_truth.jsonl"), factory)
    t0 = time.monotonic()
    stats = fleet.run()
    flushed = all(t.close(timeout=30) for t in fleet.tracers)
    if ks_guard is not None:
        ks_guard.close()
    elapsed = time.monotonic() - t0
    counters = [t.counters() for t in fleet.tracers]
    emitted = sum(c.emitted for c in counters)
    return {
        "elapsed_s": round(elapsed, 2),
        "runs": stats.runs,
        "emitted": emitted,
        "delivered": sum(c.delivered for c in counters),
        "spooled": sum(c.spooled for c in counters),
        "dropped": sum(c.dropped for c in counters),
        "events_per_s": round(emitted / max(elapsed, 1e-9), 1),
        "flushed": flushed,
        "blocked_calls": stats.blocked_calls,
    }
