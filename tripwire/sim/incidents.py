"""Incidents injected into the simulated fleet on a schedule, and the ground truth they leave behind.

Each incident says which agent misbehaves, how, from when to when, and which alert kind a working
pipeline must raise for it. The schedule spreads them over the run so that each one lands after the
detectors have a baseline, and the ground truth is written as JSON lines for ``tripwire demo report``.
"""

from __future__ import annotations

import json
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
    """The incidents of one fleet run, placed as fractions of its duration."""

    def __init__(self, incidents: list[Incident]) -> None:
        self.incidents = incidents

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
        return cls([Incident(**{**asdict(i), "expected_alert": INCIDENT_KINDS[i.kind]}) for i in items])

    def active(self, agent_id: str, t_s: float) -> list[Incident]:
        return [i for i in self.incidents if i.agent_id == agent_id and i.active(t_s)]

    def write(self, path: Path, started_at: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            for i in self.incidents:
                row = asdict(i) | {"started_epoch_s": started_at + i.start_s, "ended_epoch_s": started_at + i.end_s}
                f.write(json.dumps(row, sort_keys=True) + "\n")


def read_ground_truth(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
