"""The release gate: does an agent version meet the eval bar in production data?

Computed from ``run_summaries FINAL`` (the latest revision of each finished run) by the
``release_gate`` query: success rate = runs with outcome 'success' / finished runs; violation
rate = finished runs with a blocked call or a denied approval / finished runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from tripwire.sinks import queries
from tripwire.sinks.exceptions import GateError
from tripwire.sinks.store import Store


@dataclass(frozen=True, slots=True)
class GateThresholds:
    min_success: float = 0.95
    max_violations: float = 0.005
    min_runs: int = 200

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_success <= 1.0 or not 0.0 <= self.max_violations <= 1.0:
            raise GateError("min_success and max_violations are rates in [0, 1]")
        if self.min_runs < 1:
            raise GateError("min_runs must be at least 1")


@dataclass(frozen=True, slots=True)
class GateCheck:
    name: str
    observed: float
    bar: str
    passed: bool


@dataclass(frozen=True, slots=True)
class GateVerdict:
    agent_id: str
    agent_version: str
    runs: int
    succeeded: int
    violating_runs: int
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def evaluate_gate(
    store: Store, agent_id: str, agent_version: str, thresholds: GateThresholds | None = None, *, tenant: str = ""
) -> GateVerdict:
    t = thresholds or GateThresholds()
    row = queries.run(store, "release_gate", agent_id=agent_id, agent_version=agent_version, tenant=tenant).dicts()[0]
    runs, ok, bad = int(row["runs"]), int(row["succeeded"]), int(row["violating_runs"])
    success = ok / runs if runs else 0.0
    violations = bad / runs if runs else 0.0
    checks = (
        GateCheck("runs", float(runs), f">= {t.min_runs}", runs >= t.min_runs),
        GateCheck("success_rate", success, f">= {t.min_success:g}", runs > 0 and success >= t.min_success),
        GateCheck(
            "violation_rate", violations, f"<= {t.max_violations:g}", runs > 0 and violations <= t.max_violations
        ),
    )
    return GateVerdict(agent_id, agent_version, runs, ok, bad, checks)
