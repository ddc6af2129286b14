"""Detectors judged within one run (state keyed by run_id, next to the RunAggregator's).

- budget_breach: cost, steps, tool calls or tokens above the RunStarted caps, whether or not the
  SDK enforced them;
- runaway_loop: the same tool with the same args_hash ``repeats`` times in one run;
- unapproved_high_risk: an executed high-risk tool call with neither an approval_ref nor an
  approving ApprovalDecision seen for its tool_call_id;
- trace_gaps: a closed run with missing seq numbers, or closed by the inactivity timeout.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tripwire.processors.incidents import Occurrence
from tripwire.processors.policy import DetectorsPolicy
from tripwire.processors.run_aggregator import RunState, _val

EXECUTED_STATUSES = frozenset({"ok", "error", "timeout"})
_BUDGET_CAPS = {
    "cost": "max_cost_usd",
    "steps": "max_steps",
    "tool_calls": "max_tool_calls",
    "prompt_tokens": "max_prompt_tokens",
    "completion_tokens": "max_completion_tokens",
}
_BUDGETS_BY_EVENT = {
    "ModelCall": ("cost", "steps", "prompt_tokens", "completion_tokens"),
    "ToolCall": ("steps", "tool_calls"),
}


def _occ(run: RunState, event: Any, kind: str, key: str, severity: str, **kw: Any) -> Occurrence:
    return Occurrence(
        kind=kind,
        key=f"{kind}|{key}",
        severity=severity,
        tenant=run.tenant,
        agent_id=run.agent_id,
        agent_version=run.agent_version,
        run_id=run.run_id,
        event_id=event.event_id,
        trace_id=event.trace_id,
        credential_fingerprint=event.credential_fingerprint,
        **kw,
    )


class RunDetectors:
    """The run-scoped detectors. Their own state is a small dict stored with the run."""

    def __init__(self, policy: DetectorsPolicy) -> None:
        self.policy = policy

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"loops": {}}

    def on_event(self, run: RunState, state: dict[str, Any], event: Any) -> list[Occurrence]:
        """Judge one applied (non-duplicate) event; ``run`` already includes it."""
        kind = type(event).__name__
        out: list[Occurrence] = []
        p = self.policy
        if p.budget_breach.enabled and kind in _BUDGETS_BY_EVENT:
            usage = run.budget_usage()
            for name in _BUDGETS_BY_EVENT[kind]:
                used, cap = usage[name]
                if cap is not None and used > cap:
                    out.append(
                        _occ(
                            run,
                            event,
                            "budget_breach",
                            f"{run.run_id}|{name}",
                            p.budget_breach.severity,
                            scope=f"run:{run.run_id}",
                            observed=float(used),
                            threshold=float(cap),
                            summary=f"run {run.run_id} of {run.agent_id} is over its {name} budget: "
                            f"{used:g} > {cap:g} ({_BUDGET_CAPS[name]})",
                        )
                    )
        if kind != "ToolCall":
            return out
        status = _val(event.status)
        if p.runaway_loop.enabled and event.args_hash:
            loops = state.setdefault("loops", {})
            lk = f"{event.tool_name}|{event.args_hash}"
            n = loops[lk] = loops.get(lk, 0) + 1
            if n >= p.runaway_loop.repeats:
                out.append(
                    _occ(
                        run,
                        event,
                        "runaway_loop",
                        f"{run.run_id}|{lk}",
                        p.runaway_loop.severity,
                        scope=f"run:{run.run_id}",
                        tool_name=event.tool_name,
                        observed=float(n),
                        threshold=float(p.runaway_loop.repeats),
                        summary=f"run {run.run_id} of {run.agent_id} called {event.tool_name} with the same "
                        f"arguments {n} times (limit {p.runaway_loop.repeats})",
                    )
                )
        if (
            p.unapproved_high_risk.enabled
            and _val(event.risk) == "high"
            and status in EXECUTED_STATUSES
            and event.approval_ref is None
            and event.tool_call_id not in run.approved_call_ids
        ):
            out.append(
                _occ(
                    run,
                    event,
                    "unapproved_high_risk",
                    f"{run.tenant}|{run.agent_id}|{event.tool_name}",
                    p.unapproved_high_risk.severity,
                    scope=f"agent:{run.agent_id}",
                    tool_name=event.tool_name,
                    observed=1.0,
                    threshold=0.0,
                    summary=f"{run.agent_id} ran high-risk tool {event.tool_name} without approval "
                    f"(run {run.run_id}, call {event.tool_call_id}, status {status})",
                )
            )
        return out

    def on_close(self, run: RunState, summary: Any) -> list[Occurrence]:
        """Judge a closed run's summary (trace coverage)."""
        p = self.policy.trace_gaps
        if not p.enabled or not (summary.missing_seqs or summary.outcome == "timed_out"):
            return []  # the common case: built nothing (a class per call was ~2% of a worker's CPU)
        out: list[Occurrence] = []
        # evidence of a run-level finding: the run's trace, no single event
        ev = SimpleNamespace(
            event_id=f"run:{run.run_id}:v{summary.version}",
            trace_id=run.trace_id,
            credential_fingerprint=run.credentials[0] if run.credentials else None,
        )
        if summary.missing_seqs:
            missing = max(summary.missing_seq_count, len(summary.missing_seqs))  # 0 from an older writer
            out.append(
                _occ(
                    run,
                    ev,
                    "trace_gaps",
                    f"{run.run_id}|missing",
                    p.severity,
                    scope=f"run:{run.run_id}",
                    evidence=False,
                    observed=float(missing),
                    threshold=0.0,
                    summary=f"run {run.run_id} of {run.agent_id} closed with {missing} missing "
                    f"events (seq {_ranges(summary.missing_seqs)})",
                )
            )
        if summary.outcome == "timed_out":
            out.append(
                _occ(
                    run,
                    ev,
                    "trace_gaps",
                    f"{run.run_id}|timed_out",
                    p.severity,
                    scope=f"run:{run.run_id}",
                    evidence=False,
                    observed=float(summary.events_seen),
                    threshold=0.0,
                    summary=f"run {run.run_id} of {run.agent_id} sent no RunFinished and went quiet "
                    f"after {summary.events_seen} events",
                )
            )
        return out


def _ranges(seqs: list[int], limit: int = 8) -> str:
    parts: list[str] = []
    start = prev = seqs[0]
    for s in [*seqs[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    shown = ", ".join(parts[:limit])
    return shown + (", ..." if len(parts) > limit else "")
