"""Seeded chdb data for the dashboard tests: a small fleet written through the production row
mapping (``tripwire.sinks.rows.map_record``) and the ``Store`` insert API.

Timestamps are relative to ``now`` so every run falls in the dashboard's "Last hour".
Includes the cases the pages must get right: a summary re-emitted with a higher version
(FINAL), failures, a seq gap, a budget breach, a kill-switch block, approvals, alert incidents
with updates, an acknowledgement, and kill-switch commands (in force, resumed, expired).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tripwire.schemas import (
    Alert,
    ApprovalDecision,
    KillSwitchCommand,
    ModelCall,
    RunFinished,
    RunStarted,
    RunSummary,
    ToolCall,
)
from tripwire.sinks.rows import TABLES, map_record
from tripwire.sinks.store import Store

# (tenant, agent, version, workflow, model)
FLEET = [
    ("acme", "refund-assistant", "1.0.0", "refund_request", "gpt-4o"),
    ("acme", "refund-assistant", "1.1.0", "refund_request", "gpt-4o-mini"),
    ("acme", "triage-bot", "2.0.0", "support_triage", "claude-sonnet-4"),
    ("globex", "sales-agent", "0.9.0", "outreach", "gpt-4o"),
]
RUNS_PER_VERSION = 6


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


@dataclass
class Seeded:
    now: datetime
    run_ids: list[str] = field(default_factory=list)
    blocked_run: str = ""
    breach_run: str = ""
    gap_run: str = ""
    expensive_run: str = ""
    active_scope: str = "agent:triage-bot/tool:send_email"
    incident_with_run: str = "inc-cost-1"
    incident_acked: str = "inc-loop-1"


def _events(i: int, fleet: tuple[str, str, str, str, str], start: datetime, *, kind: str) -> list[Any]:
    tenant, agent, version, workflow, model = fleet
    run_id = str(uuid.UUID(_hex(f"run-{i}", 32)))
    trace = _hex(f"trace-{i}", 32)
    root = _hex(f"span-{i}", 16)
    t = start
    out: list[Any] = []

    def base(seq: int, dur_ms: float) -> dict[str, Any]:
        nonlocal t
        s, t = t, t + timedelta(milliseconds=dur_ms)
        return dict(
            event_id=str(uuid.UUID(_hex(f"ev-{i}-{seq}", 32))), tenant=tenant, agent_id=agent, agent_version=version,
            workflow=workflow, environment="prod", principal=f"user:{i % 5}", credential_fingerprint=None,
            trace_id=trace, span_id=root if seq == 0 else _hex(f"s-{i}-{seq}", 16),
            parent_span_id=None if seq == 0 else root, run_id=run_id, seq=seq, ts_start=s, ts_end=t,
        )

    out.append(RunStarted(**base(0, 0), max_cost_usd=0.05, max_steps=10))
    cost1 = round(0.001 * (1 + i % 7) * (10 if kind == "breach" else 1), 6)
    out.append(ModelCall(
        **base(1, 300 + 37 * (i % 11)), provider="openai", request_model=model, response_model=model,
        input_tokens=1000 + i, cache_read_tokens=200, cache_write_tokens=0, output_tokens=100 + i, reasoning_tokens=0,
        cost_usd=cost1, cost_source="price_table", status="error" if kind == "failure" else "ok",
        finish_reason="tool_calls", error_type="RateLimit" if kind == "failure" else None,
    ))
    args = json.dumps({"order_id": f"A-{i}", "email": "[REDACTED]"})
    seq = 2
    tool = "send_email" if kind == "blocked" else "lookup_order"
    if kind == "approval":
        out.append(ApprovalDecision(**base(2, 40), tool_name=tool, tool_call_id=f"c{i}", risk="high",
                                    decision="approved", approver="oncall:jane", reason="looks fine"))
        seq = 3
    out.append(ToolCall(
        **base(seq, 5 if kind == "blocked" else 80 + i), tool_name=tool, tool_call_id=f"c{i}",
        risk="high" if kind in ("blocked", "approval") else "low", args=args,
        args_hash=_hex(args, 64), status="blocked" if kind == "blocked" else "ok", side_effect=kind == "blocked",
        approval_ref=out[-1].event_id if kind == "approval" else None,
        blocked_reason="kill switch: freeze_tool on agent:triage-bot/tool:send_email" if kind == "blocked" else None,
    ))
    seq += 1
    cost2 = round(0.0005 * (1 + i % 3), 6)
    out.append(ModelCall(
        **base(seq, 200 + 13 * (i % 5)), provider="openai", request_model=model, response_model=model,
        input_tokens=500, cache_read_tokens=0, cache_write_tokens=50, output_tokens=60, reasoning_tokens=20,
        cost_usd=cost2, cost_source="price_table", status="ok", finish_reason="stop",
    ))
    seq += 1
    outcome = {"failure": "failure", "blocked": "aborted"}.get(kind, "success")
    out.append(RunFinished(**base(seq, 0), outcome=outcome, last_seq=seq))
    return out


def _summary(events: list[Any], *, kind: str, version: int = 1, partial: bool = False) -> RunSummary:
    first, last = events[0], events[-1]
    calls = [e for e in events if isinstance(e, ModelCall)]
    tools = [e for e in events if isinstance(e, ToolCall)]
    cost = round(sum(c.cost_usd or 0 for c in calls), 9)
    missing = [2] if kind == "gap" else []
    return RunSummary(
        run_id=first.run_id, tenant=first.tenant, agent_id=first.agent_id, agent_version=first.agent_version,
        workflow=first.workflow, environment="prod", principal=first.principal, trace_id=first.trace_id,
        started_at=first.ts_start, ended_at=None if partial else last.ts_end,
        duration_ms=None if partial else (last.ts_end - first.ts_start).total_seconds() * 1000,
        outcome="running" if partial else last.outcome.value,
        cost_usd=cost / 2 if partial else cost, cost_by_model={calls[0].request_model: cost},
        cost_input_usd=round(cost * 0.5, 9), cost_cache_read_usd=round(cost * 0.05, 9),
        cost_cache_write_usd=round(cost * 0.05, 9), cost_output_usd=round(cost * 0.35, 9),
        cost_reasoning_usd=round(cost * 0.05, 9),
        input_tokens=sum(c.input_tokens for c in calls), cache_read_tokens=sum(c.cache_read_tokens for c in calls),
        cache_write_tokens=sum(c.cache_write_tokens for c in calls), output_tokens=sum(c.output_tokens for c in calls),
        reasoning_tokens=sum(c.reasoning_tokens for c in calls),
        steps=len(calls) + len(tools), model_calls=len(calls), tool_calls=len(tools),
        errors=sum(c.status.value != "ok" for c in calls),
        blocked_calls=sum(t.status.value == "blocked" for t in tools),
        approvals=sum(isinstance(e, ApprovalDecision) for e in events), denials=0,
        budget_cost_pct=round(cost / 0.05 * 100, 6), budget_steps_pct=(len(calls) + len(tools)) * 10.0,
        events_seen=len(events) - len(missing), missing_seqs=missing,
        seq_gaps=1 if missing else 0, missing_seq_count=len(missing),
        version=version, emitted_at=last.ts_end + timedelta(seconds=version),
    )


def seed(store: Store, now: datetime | None = None) -> Seeded:
    """Write the fleet; returns what the tests look up."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    s = Seeded(now=now)
    records: list[tuple[str, Any]] = []
    kinds = ["success", "failure", "approval", "success", "gap", "success"]
    i = 0
    for f in FLEET:
        for j in range(RUNS_PER_VERSION):
            kind = kinds[j]
            if f[1] == "triage-bot" and j == 3:
                kind = "blocked"
            if f[2] == "1.1.0" and j == 5:
                kind = "breach"
            start = now - timedelta(minutes=50) + timedelta(minutes=2 * j, seconds=7 * i)
            events = _events(i, f, start, kind=kind)
            records += [("events", e) for e in events]
            if j == 0:  # an early revision the later one replaces
                records.append(("runs", _summary(events, kind=kind, version=1, partial=True)))
                records.append(("runs", _summary(events, kind=kind, version=2)))
            else:
                records.append(("runs", _summary(events, kind=kind)))
            s.run_ids.append(events[0].run_id)
            if kind == "blocked":
                s.blocked_run = events[0].run_id
            if kind == "breach":
                s.breach_run = s.expensive_run = events[0].run_id
            if kind == "gap" and not s.gap_run:
                s.gap_run = events[0].run_id
            i += 1
    records += [("alerts", a) for a in _alerts(s)]
    records += [("killswitch", c) for c in _commands(now)]
    _write(store, records)
    store.insert("alert_acks", ("tenant", "incident_id", "acked_by", "acked_at", "note"),
                 [("acme", s.incident_acked, "oncall:jane", now - timedelta(minutes=3), "looking")])
    return s


def _alerts(s: Seeded) -> list[Alert]:
    now = s.now
    common = dict(tenant="acme", credential_fingerprint=None, window_start=None, window_end=None,
                  evidence_event_ids=[], agent_version=None, tool_name=None)
    breach_trace = _hex(f"trace-{s.run_ids.index(s.breach_run)}", 32)
    blocked_trace = _hex(f"trace-{s.run_ids.index(s.blocked_run)}", 32)
    return [
        Alert(alert_id="a1", incident_id=s.incident_with_run, kind="cost_spike", severity="critical",
              scope="agent:refund-assistant", agent_id="refund-assistant", run_id=s.breach_run, observed=0.1,
              threshold=0.05, count=1, evidence_trace_ids=[breach_trace], summary="run cost 2x budget",
              status="firing", created_at=now - timedelta(minutes=20), updated_at=now - timedelta(minutes=20),
              **common),
        Alert(alert_id="a2", incident_id=s.incident_acked, kind="runaway_loop", severity="warning",
              scope="agent:triage-bot/tool:send_email", agent_id="triage-bot", run_id=None, observed=12,
              threshold=5, count=1, evidence_trace_ids=[blocked_trace], summary="send_email called 12x",
              status="firing", created_at=now - timedelta(minutes=15), updated_at=now - timedelta(minutes=15),
              **common),
        Alert(alert_id="a3", incident_id=s.incident_acked, kind="runaway_loop", severity="critical",
              scope="agent:triage-bot/tool:send_email", agent_id="triage-bot", run_id=None, observed=30,
              threshold=5, count=2, evidence_trace_ids=[blocked_trace], summary="send_email called 30x",
              status="firing", created_at=now - timedelta(minutes=15), updated_at=now - timedelta(minutes=10),
              **common),
        Alert(alert_id="a4", incident_id="inc-err-1", kind="tool_error_rate", severity="warning",
              scope="agent:refund-assistant", agent_id="refund-assistant", run_id=None, observed=0.2,
              threshold=0.1, count=1, evidence_trace_ids=[], summary="tool errors 20%", status="resolved",
              created_at=now - timedelta(minutes=40), updated_at=now - timedelta(minutes=30), **common),
    ]


def _commands(now: datetime) -> list[KillSwitchCommand]:
    def cmd(
        n: int, scope: str, action: str, minutes_ago: int, expires_in: int | None, reason: str, **kw: Any
    ) -> KillSwitchCommand:
        issued = now - timedelta(minutes=minutes_ago)
        return KillSwitchCommand(
            command_id=f"cmd-{n}", scope=scope, action=action, issued_at=issued,
            expires_at=None if expires_in is None else now + timedelta(minutes=expires_in),
            reason=reason, alert_id="a2" if n == 1 else None, issued_by="policy:runaway" if n == 1 else "oncall:jane",
            nonce=f"n{n}", key_id="k1", signature=b"\x01" * 64, **kw,
        )

    return [
        cmd(1, "agent:triage-bot/tool:send_email", "freeze_tool", 12, 60, "runaway loop"),
        cmd(2, "agent:sales-agent", "disable_autonomy", 30, None, "suspicious"),
        cmd(3, "agent:sales-agent", "resume", 25, None, "false alarm"),
        cmd(4, "tenant:globex", "throttle", 45, -5, "burst", throttle_per_minute=10),
    ]


def _write(store: Store, records: list[tuple[str, Any]]) -> None:
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for n, (role, rec) in enumerate(records):
        table, row = map_record(role, rec)
        row = tuple(v.value if hasattr(v, "value") and isinstance(v.value, str) else v for v in row)
        by_table.setdefault(table, []).append((*row, f"seed.{role}", 0, n))
    for table, rows in by_table.items():
        store.insert(table, TABLES[table].insert_columns, rows)


def _main(argv: list[str]) -> int:
    """``python -m tests.dash_seed seed URL`` (prints what the browser test looks for) or ``audit URL``.

    Runs in its own process: chdb binds a folder to one process, and the dashboard server owns it
    while it runs.
    """
    import sys

    from tripwire.sinks.migrations import migrate
    from tripwire.sinks.store import open_store

    mode, url = argv
    store = open_store(url)
    try:
        if mode == "seed":
            migrate(store)
            s = seed(store)
            latest = store.query(
                "SELECT count() AS runs, sum(c) AS spend, countIf(o = 'success') / countIf(o != 'running') AS ok "
                "FROM (SELECT run_id, argMax(cost_usd, version) AS c, argMax(outcome, version) AS o "
                "FROM run_summaries GROUP BY run_id)"
            ).dicts()[0]
            out = {"runs": latest["runs"], "spend": latest["spend"], "success_rate": latest["ok"],
                   "blocked_run": s.blocked_run, "breach_run": s.breach_run, "active_scope": s.active_scope}
        else:
            out = {"audit": store.query(
                "SELECT source, actor, scope, action, reason, command_id FROM killswitch_audit "
                "WHERE source = 'dashboard' ORDER BY issued_at"
            ).dicts(), "actions": store.query(
                "SELECT actor, role, authenticated, action, decision, reason, details FROM dashboard_audit ORDER BY at"
            ).dicts()}
    finally:
        store.close()
    sys.stdout.write(json.dumps(out, default=str) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
