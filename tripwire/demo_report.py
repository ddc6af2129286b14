"""``tripwire demo report``: what the fleet was made to do against what the pipeline caught.

It reads the ground truth the simulator wrote and the data in ClickHouse (the same SQL works on a
server): per injected incident, whether an alert of the expected kind was raised for that agent
(detected/missed) and how long after the incident began; then total cost, p95 by agent version,
kill-switch commands and the calls they blocked, and a PII check of every stored tool argument.
Every query is a named query of the catalog (``tripwire.sinks.QUERIES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripwire.sim.incidents import PII_CORPUS, read_ground_truth
from tripwire.sinks import Store, run_query

DETECTION_GRACE_S = 5.0  # alerts stamped in event time may precede the wall-clock start slightly
# An incident that began less than this before the run stopped, with no alert yet, is "too late to
# judge" rather than missed: the detectors' windows had not closed (the demo may stop at any moment).
JUDGE_AFTER_S = 30.0
P95_DEFINITION = ("p95 here = quantileExact(0.95) of the stored tool-call durations (the value at rank "
                  "floor(0.95 n)); the streaming windows' p95 (window_stats) is a DDSketch value within 1% of the "
                  "exact value at the same rank, and the dashboard's charts merge t-digests (about 1% in rank)")


@dataclass(frozen=True)
class IncidentOutcome:
    kind: str
    agent_id: str
    expected_alert: str | None
    detected: bool
    delay_s: float | None
    evidence: str
    incident_id: str = ""
    pending: bool = False  # began too shortly before the stop to be judged, and not detected yet


def _alert_agents(incident: dict[str, Any]) -> list[str]:
    agents = [str(incident["agent_id"])]
    other = (incident.get("params") or {}).get("shares_with")
    if other:
        agents.append(str(other))
    return agents


def incident_outcomes(store: Store, ground_truth: Path, stopped_at: float | None = None) -> list[IncidentOutcome]:
    """Per injected incident: detected or not; with ``stopped_at`` (epoch s), an undetected incident
    that began less than ``JUDGE_AFTER_S`` before it is marked pending instead of missed."""
    judged = [_judge(store, inc) for inc in read_ground_truth(ground_truth)]
    if stopped_at is None:
        return judged
    return [o if o.detected or float(inc["started_epoch_s"]) < stopped_at - JUDGE_AFTER_S
            else IncidentOutcome(**{**o.__dict__, "pending": True})
            for o, inc in zip(judged, read_ground_truth(ground_truth), strict=True)]


def _judge(store: Store, inc: dict[str, Any]) -> IncidentOutcome:
    kind, agent, expected = str(inc["kind"]), str(inc["agent_id"]), inc.get("expected_alert")
    incident_id = str(inc.get("incident_id") or kind)
    began = float(inc["started_epoch_s"])
    start = datetime.fromtimestamp(began - DETECTION_GRACE_S, UTC)
    if expected is None:  # PII: detected means redacted in every stored argument of that tool
        tool = str(inc["tool"])
        found = run_query(store, "redacted_tool_args", agent_id=agent, tool=tool, start=start).dicts()
        calls, redacted = (int(found[0]["calls"]), int(found[0]["redacted"])) if found else (0, 0)
        leaks = pii_leaks(store)
        return IncidentOutcome(kind, agent, None, redacted > 0 and not leaks, None,
                               f"{redacted}/{calls} calls redacted, {len(leaks)} PII strings stored", incident_id)
    alerts = run_query(store, "first_alert", kind=str(expected), agents=_alert_agents(inc), start=start).rows
    first, incidents = alerts[0] if alerts else (None, 0)
    detected = int(incidents) > 0
    delay = None
    if detected and first is not None:
        first_ts = first if isinstance(first, datetime) else datetime.fromisoformat(str(first))
        if first_ts.tzinfo is None:
            first_ts = first_ts.replace(tzinfo=UTC)
        delay = max(0.0, first_ts.timestamp() - began)
    return IncidentOutcome(kind, agent, str(expected), detected, delay, f"{int(incidents)} incident(s)",
                           incident_id)


def pii_leaks(store: Store) -> list[str]:
    """Every corpus string found in any stored tool argument or prompt text (must be empty)."""
    found = []
    for s in PII_CORPUS:
        if run_query(store, "stored_text_hits", text=s).rows:  # a row only when the text is stored
            found.append(s)
    return found


def totals(store: Store) -> dict[str, Any]:
    stored = run_query(store, "stored_totals").dicts()[0]
    p95 = run_query(store, "tool_p95_by_version").rows
    ks = run_query(store, "killswitch_actions").rows
    return {"events": int(stored["events"]), "cost_usd": float(stored["cost_usd"] or 0.0), "p95_by_version": p95,
            "killswitch": ks, "blocked_calls": int(stored["blocked_calls"])}


def render(store: Store, folder: Path) -> tuple[Any, bool]:
    """A rich renderable of the report, and whether every injected incident was detected."""
    from rich.console import Group
    from rich.table import Table

    outcomes = incident_outcomes(store, folder / "ground_truth.jsonl", _stopped_at(folder))
    t = Table(title="injected incidents vs alerts raised")
    for col in ("incident", "agent", "expected alert", "verdict", "delay", "evidence"):
        t.add_column(col)
    for o in outcomes:
        verdict = "[green]detected[/]" if o.detected else "[yellow]pending[/]" if o.pending else "[red]missed[/]"
        t.add_row(o.incident_id or o.kind, o.agent_id, o.expected_alert or "(redaction)", verdict,
                  f"{o.delay_s:.1f}s" if o.delay_s is not None else "-", o.evidence)
    tot = totals(store)
    s = Table(title="totals", show_header=False)
    s.add_row("events stored", str(tot["events"]))
    s.add_row("total cost", f"${tot['cost_usd']:.2f}")
    s.add_row("kill-switch commands", ", ".join(f"{a}={n}" for a, n in tot["killswitch"]) or "-")
    s.add_row("calls blocked", str(tot["blocked_calls"]))
    detected_kinds = sorted({o.kind for o in outcomes if o.detected})
    s.add_row("incident kinds caught", f"{len(detected_kinds)}: {', '.join(detected_kinds) or '-'}")
    p = Table(title="tool-call p95 by agent version", caption=P95_DEFINITION)
    for col in ("agent", "version", "p95 ms"):
        p.add_column(col)
    for agent, version, p95 in tot["p95_by_version"]:
        p.add_row(str(agent), str(version), f"{float(p95):.0f}")
    ok = bool(outcomes) and all(o.detected or o.pending for o in outcomes)
    return Group(t, s, p), ok


def _stopped_at(folder: Path) -> float | None:
    """When the last run stopped (``last_run.json``), if it says."""
    import json

    path = folder / "last_run.json"
    try:
        value = json.loads(path.read_text()).get("stopped_epoch_s")
    except (OSError, ValueError):
        return None
    return float(value) if value is not None else None
