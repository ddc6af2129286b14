"""Incidents injected into the simulated fleet on a schedule, and the ground truth they leave behind.

Each incident says which agent misbehaves, how, from when to when, and which alert kind a working
pipeline must raise for it. Two schedules:

- :meth:`IncidentSchedule.standard` spreads the seven kinds over a run of known length (``--duration``);
- :class:`IncidentCycle` repeats them for an open-ended run: every ``period_s`` (180 s) a new cycle
  injects all seven kinds within its first minute (the first at 10 s), with new incident ids and,
  from the second cycle on, other agents (PII, shared credential), tools (error burst, latency) and
  parameters (every kind).

The fleet appends each incident to the ground truth (JSON lines for ``tripwire demo report``) when it
starts (:meth:`IncidentSchedule.due`), so the ground truth is right whenever the run stops.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# incident kind -> the alert kind that detects it (None: detected by redaction, not by an alert)
INCIDENT_KINDS: dict[str, str | None] = {
    "runaway_loop": "runaway_loop",
    "cost_spike": "cost_spike",
    "tool_error_burst": "tool_error_rate",
    "high_risk_unapproved": "unapproved_high_risk",
    "shared_credential": "shared_credential",
    "latency_slo_breach": "latency_slo",
    "pii_in_args": None,
}


@dataclass(frozen=True)
class Incident:
    kind: str
    agent_id: str
    start_s: float  # seconds after the fleet started
    end_s: float
    tool: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    expected_alert: str | None = None
    # filled in when the fleet actually injects it (epoch seconds)
    injected_at: float | None = None
    incident_id: str = ""  # unique within a demo folder ("c3-runaway_loop"); "" for hand-built schedules
    cycle: int = 0

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


# A corpus of PII and secrets that the pii_in_args incident puts into tool arguments. None of these
# strings may appear in any stored byte or column.
PII_CORPUS: tuple[str, ...] = (
    "jane.doe@example.org",
    "+1 415 555 0132",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "DE89370400440532013000",
    "sk-live-7fJd92kslq0PqzX81mNc4vB2",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    # the families of issue 18 (single-line, so that the stored-text checks can look for them verbatim)
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "-----BEGIN RSA PRIVATE KEY----- MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw "
    "-----END RSA PRIVATE KEY-----",
    "postgres://app:Zq8w2LmN4pX7@db.internal:5432/prod",
    "glpat-xK9mP2vL8nQ4rT6wY1zB",
    "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH",
    "josé.müller@bücher.de",
    "иван.петров@пример.рф",
    "+44 20 7946 0958",
    "FR1420041010050500013M02606",
)


class IncidentSchedule:
    """A fixed list of incidents, placed in seconds after the fleet started."""

    def __init__(self, incidents: list[Incident]) -> None:
        self.incidents = incidents
        self._announced: set[int] = set()

    @classmethod
    def standard(cls, duration_s: float) -> IncidentSchedule:
        d = duration_s

        def at(a: float, b: float) -> tuple[float, float]:
            return a * d, b * d

        items = [
            Incident("pii_in_args", "support-triage", *at(0.10, 0.90), tool="zendesk.reply"),
            Incident("shared_credential", "crm-updater", *at(0.15, 0.70), params={"shares_with": "support-triage"}),
            Incident("runaway_loop", "pr-agent", *at(0.20, 0.30), tool="github.read_issue", params={"repeats": 8}),
            Incident("high_risk_unapproved", "refund-assistant", *at(0.25, 0.45), tool="stripe.issue_refund",
                     params={"amount_usd": 480.0}),
            Incident("tool_error_burst", "crm-updater", *at(0.30, 0.80), tool="salesforce.update",
                     params={"error_rate": 0.5}),
            Incident("latency_slo_breach", "support-triage", *at(0.35, 0.85), tool="zendesk.search_kb",
                     params={"slowdown": 12.0}),
            Incident("cost_spike", "expense-categorizer", *at(0.55, 0.90), params={"token_multiplier": 4}),
        ]
        return cls([Incident(**{**asdict(i), "expected_alert": INCIDENT_KINDS[i.kind], "incident_id": i.kind})
                    for i in items])

    @property
    def open_ended(self) -> bool:
        return False

    def active(self, agent_id: str, t_s: float) -> list[Incident]:
        return [i for i in self.incidents if i.agent_id == agent_id and i.active(t_s)]

    def due(self, t_s: float) -> list[Incident]:
        """The incidents that started by ``t_s`` and were not returned before (each once)."""
        out = []
        for n, i in enumerate(self.incidents):
            if i.start_s <= t_s and n not in self._announced:
                self._announced.add(n)
                out.append(i)
        return out

    def write(self, path: Path, started_at: float) -> None:
        """Append every incident to the ground truth at once (the whole schedule, known in advance)."""
        append_ground_truth(path, self.incidents, started_at)


# The cycle of an open-ended demo: (start, end) seconds into each cycle, per kind; the first incident
# comes 10 s in (the detectors need a few windows of baseline), the last kind starts at 55 s, every
# incident is over at 100 s, and the gap to the next cycle outlasts the incident cooldown (60 s in
# the demo policy), so the next cycle's alerts are new incidents.
CYCLE_S = 180.0
CYCLE_SLOTS: dict[str, tuple[float, float]] = {
    "pii_in_args": (10, 100),
    "shared_credential": (15, 75),
    "runaway_loop": (20, 35),
    "high_risk_unapproved": (25, 50),
    "tool_error_burst": (30, 90),
    "latency_slo_breach": (35, 95),
    "cost_spike": (55, 100),
}
# Who misbehaves, by cycle (cycle n uses entry n % len): the first entry is the standard schedule's.
# A trip must not hide another incident of the same cycle, so some roles stay put: a freeze_tool on
# the looping agent's tool ends that agent's runs at the tool (pr-agent carries no other incident),
# and an approval switch (shared credential, error-rate handoff, cost spike) on the agent that skips
# its approval would approve the very call the unapproved-high-risk incident is about (refund-assistant
# carries only that, and sometimes the PII, whose redaction no switch hides).
_RUNAWAY = (("pr-agent", "github.read_issue"),)
_UNAPPROVED = (("refund-assistant", "stripe.issue_refund"),)
_SHARED = (("crm-updater", "support-triage"), ("expense-categorizer", "support-triage"),
           ("support-triage", "crm-updater"))
_ERRORS = (("crm-updater", "salesforce.update"), ("crm-updater", "salesforce.query"))
# (tool, slowdown range): support-triage's zendesk.* SLO is 2500 ms in the demo policy
_SLOW = (("zendesk.search_kb", (10.0, 14.0)), ("zendesk.get_ticket", (30.0, 40.0)))
_PII = (("support-triage", "zendesk.reply"), ("refund-assistant", "zendesk.reply"))


class IncidentCycle(IncidentSchedule):
    """All seven kinds every ``period_s``, forever; cycle numbers continue from ``first_cycle`` (a
    re-run of the demo continues the cycle of the last one)."""

    def __init__(self, *, period_s: float = CYCLE_S, first_cycle: int = 0, seed: int = 7) -> None:
        super().__init__([])
        self.period_s = period_s
        self.first_cycle = first_cycle
        self.seed = seed
        self._cycles: dict[int, list[Incident]] = {}
        self._next_due = 0  # cycles (relative) whose incidents were all returned by due()

    @property
    def open_ended(self) -> bool:
        return True

    def cycle(self, k: int) -> list[Incident]:
        """The incidents of the k-th cycle of this run (k = 0 first), times relative to the fleet start."""
        found = self._cycles.get(k)
        if found is None:
            found = self._cycles[k] = self._build(k)
            for old in [c for c in self._cycles if c < k - 1]:
                del self._cycles[old]
        return found

    def _build(self, k: int) -> list[Incident]:
        n = self.first_cycle + k
        rng = random.Random(self.seed * 7919 + n)
        base = k * self.period_s

        def slot(kind: str) -> tuple[float, float]:
            a, b = CYCLE_SLOTS[kind]
            return base + a, base + b

        loop_agent, loop_tool = _RUNAWAY[n % len(_RUNAWAY)]
        cred_agent, shares = _SHARED[n % len(_SHARED)]
        hr_agent, hr_tool = _UNAPPROVED[n % len(_UNAPPROVED)]
        err_agent, err_tool = _ERRORS[n % len(_ERRORS)]
        slow_tool, (lo, hi) = _SLOW[n % len(_SLOW)]
        pii_agent, pii_tool = _PII[n % len(_PII)]
        first = n == 0  # the first cycle tells the standard story with the standard parameters
        items = [
            Incident("pii_in_args", pii_agent, *slot("pii_in_args"), tool=pii_tool),
            Incident("shared_credential", cred_agent, *slot("shared_credential"), params={"shares_with": shares}),
            Incident("runaway_loop", loop_agent, *slot("runaway_loop"), tool=loop_tool,
                     params={"repeats": 8 if first else rng.randint(8, 12)}),
            Incident("high_risk_unapproved", hr_agent, *slot("high_risk_unapproved"), tool=hr_tool,
                     params={"amount_usd": 480.0 if first else round(rng.uniform(300, 900), 2)}),
            Incident("tool_error_burst", err_agent, *slot("tool_error_burst"), tool=err_tool,
                     params={"error_rate": 0.5 if first else round(rng.uniform(0.4, 0.6), 2)}),
            Incident("latency_slo_breach", "support-triage", *slot("latency_slo_breach"), tool=slow_tool,
                     params={"slowdown": 12.0 if first else round(rng.uniform(lo, hi), 1)}),
            Incident("cost_spike", "expense-categorizer", *slot("cost_spike"),
                     params={"token_multiplier": 4 if first else rng.randint(4, 6)}),
        ]
        return [Incident(**{**asdict(i), "expected_alert": INCIDENT_KINDS[i.kind], "incident_id": f"c{n}-{i.kind}",
                            "cycle": n}) for i in items]

    def active(self, agent_id: str, t_s: float) -> list[Incident]:
        k = int(max(0.0, t_s) // self.period_s)
        return [i for i in self.cycle(k) if i.agent_id == agent_id and i.active(t_s)]

    def due(self, t_s: float) -> list[Incident]:
        out = []
        k_now = int(max(0.0, t_s) // self.period_s)
        for k in range(self._next_due, k_now + 1):
            for n, i in enumerate(self.cycle(k)):
                key = (self.first_cycle + k) * 100 + n
                if i.start_s <= t_s and key not in self._announced:
                    self._announced.add(key)
                    out.append(i)
            if all((self.first_cycle + k) * 100 + n in self._announced for n in range(len(self.cycle(k)))):
                self._next_due = k + 1
        return out

    def write(self, path: Path, started_at: float) -> None:
        return None  # an open-ended schedule is appended as it goes (due)


def append_ground_truth(path: Path, incidents: list[Incident], started_at: float) -> None:
    """Append incidents to the ground truth (JSON lines), with their start and end in epoch seconds."""
    if not incidents:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for i in incidents:
            row = asdict(i) | {"started_epoch_s": started_at + i.start_s, "ended_epoch_s": started_at + i.end_s}
            f.write(json.dumps(row, sort_keys=True) + "\n")


def next_cycle(path: Path) -> int:
    """The cycle number a re-run continues with: one after the highest in the ground truth."""
    cycles = [int(r.get("cycle", 0)) for r in read_ground_truth(path) if r.get("incident_id", "").startswith("c")]
    return max(cycles) + 1 if cycles else 0


def read_ground_truth(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
