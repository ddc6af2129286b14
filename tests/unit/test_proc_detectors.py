"""Every detector: a positive and a negative case, through the in-process Pipeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.proc_factory import T0, RunScript
from tripwire.processors import Pipeline, policy_from_dict

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def feed(pipeline: Pipeline, events, now: float = NOW) -> list:
    alerts = []
    for e in events:
        alerts.extend(pipeline.process(e, now).alerts)
    return alerts


def kinds(alerts) -> list[str]:
    return [a.kind for a in alerts]


# -- 1. budget breach -----------------------------------------------------------------------


def test_budget_breach_fires_when_tool_calls_exceed_the_cap() -> None:
    r = RunScript(1)
    r.start(max_tool_calls=2)
    for _ in range(3):
        r.tool(args=f'{{"n": {r.seq}}}')
    (a,) = feed(Pipeline(), r.events)
    assert (a.kind, a.observed, a.threshold, a.run_id, a.scope, a.severity) == (
        "budget_breach",
        3.0,
        2.0,
        r.run_id,
        f"run:{r.run_id}",
        "critical",
    )
    assert a.evidence_event_ids == [r.events[3].event_id] and a.evidence_trace_ids == [r.trace_id]


def test_budget_breach_cost_uses_run_started_cap_even_if_sdk_did_not_enforce() -> None:
    r = RunScript(2)
    r.start(max_cost_usd=1.0)
    r.model(0.6)
    r.model(0.6)
    (a,) = feed(Pipeline(), r.events)
    assert a.kind == "budget_breach" and a.observed == 1.2 and a.threshold == 1.0


def test_budget_at_the_cap_is_not_a_breach() -> None:
    r = RunScript(3)
    r.start(max_tool_calls=2, max_cost_usd=1.0, max_steps=3)
    r.tool(args="1")
    r.tool(args="2")
    r.model(1.0)
    assert feed(Pipeline(), r.events) == []


# -- 2. tool error rate -----------------------------------------------------------------------


def _tool_calls(n: int, errors: int, seed: int = 4) -> list:
    r = RunScript(seed)
    for i in range(n):
        r.tool("search", status="error" if i < errors else "ok", args=str(i), dur_ms=10)
    return r.events


def test_tool_error_rate_above_threshold_with_enough_calls() -> None:
    alerts = feed(Pipeline(), _tool_calls(20, 3))  # 15% > 10%, 20 calls
    assert kinds(alerts) == ["tool_error_rate"]
    a = alerts[0]
    assert a.observed == 3 / 20 and a.threshold == 0.10 and a.tool_name == "search"
    assert a.window_end - a.window_start == timedelta(minutes=5)


@pytest.mark.parametrize(("n", "errors"), [(20, 2), (19, 5)])  # exactly 10%; too few calls
def test_tool_error_rate_negative(n: int, errors: int) -> None:
    assert feed(Pipeline(), _tool_calls(n, errors)) == []


def test_tool_error_rate_forgets_calls_outside_the_sliding_window() -> None:
    r = RunScript(5)
    for i in range(10):
        r.tool("search", status="error", args=str(i), dur_ms=10)
    r.at += timedelta(minutes=6)
    for i in range(20):
        r.tool("search", args=f"b{i}", dur_ms=10)
    assert "tool_error_rate" not in kinds(feed(Pipeline(), r.events))


# -- 3. latency SLO ------------------------------------------------------------------------------

SLO = {"detectors": {"latency_slo": {"min_count": 20, "slos": [{"kind": "tool", "name": "search", "p95_ms": 1000}]}}}


def _latency_run(ms: float) -> tuple[Pipeline, list]:
    p = Pipeline(policy_from_dict(SLO))
    r = RunScript(6)
    for i in range(20):
        r.tool("search", dur_ms=ms, args=str(i))
    alerts = feed(p, r.events)
    alerts.extend(p.tick(NOW + 3600).alerts)
    return p, alerts


def test_latency_slo_breach_on_closed_window() -> None:
    _, alerts = _latency_run(2000.0)
    a = next(a for a in alerts if a.kind == "latency_slo")
    assert a.threshold == 1000.0 and abs(a.observed - 2000.0) <= 20.0 and a.tool_name == "search"
    assert a.window_start == T0 and a.window_end == T0 + timedelta(minutes=1)


def test_latency_within_slo_is_quiet() -> None:
    _, alerts = _latency_run(500.0)
    assert "latency_slo" not in kinds(alerts)


# -- 4. cost spike -------------------------------------------------------------------------------


def _spend(per_minute: list[float]) -> list:
    r = RunScript(7)
    for m, usd in enumerate(per_minute):
        r.at = T0 + timedelta(minutes=m, seconds=1)
        r.model(usd / 2, dur_ms=10)
        r.model(usd / 2, dur_ms=10)
    return r.events


def test_cost_spike_against_ewma_baseline() -> None:
    p = Pipeline()
    alerts = feed(p, _spend([0.10, 0.12, 0.09, 0.11, 0.10, 0.10, 5.00]))
    # fires on the first $2.50 of the spiking minute; the second call folds into the same incident
    (a,) = [a for a in alerts if a.kind == "cost_spike"]
    assert a.observed == 2.5 and a.count == 1 and a.window_start == T0 + timedelta(minutes=6)
    assert a.threshold < 2.5 and a.agent_id == "refund-assistant"
    (upd,) = p.tick(NOW + p.policy.incidents.update_interval_s).alerts
    assert (upd.incident_id, upd.count, upd.observed, upd.status) == (a.incident_id, 2, 5.0, "firing")
    assert upd.alert_id != a.alert_id


@pytest.mark.parametrize(
    "spend",
    [
        [0.10, 0.12, 0.09, 0.11, 0.10, 0.10, 0.13],  # steady
        [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.50],  # a 50x jump but under the $1 minimum
        [5.00],  # no baseline yet (warm-up)
    ],
)
def test_cost_spike_negative(spend: list[float]) -> None:
    assert "cost_spike" not in kinds(feed(Pipeline(), _spend(spend)))


# -- 5. runaway loop ------------------------------------------------------------------------------


def test_runaway_loop_same_tool_same_args() -> None:
    r = RunScript(8)
    for _ in range(5):
        r.tool("search", args='{"q": "refund"}')
    (a,) = feed(Pipeline(), r.events)
    assert a.kind == "runaway_loop" and a.observed == 5.0 and a.threshold == 5.0 and a.tool_name == "search"


def test_runaway_loop_negative() -> None:
    r = RunScript(9)
    for i in range(4):
        r.tool("search", args='{"q": "refund"}')
        r.tool("search", args=f'{{"q": {i}}}')
    assert feed(Pipeline(), r.events) == []


# -- 6. high-risk tool call without approval ------------------------------------------------------


def test_unapproved_high_risk_call() -> None:
    r = RunScript(10)
    r.tool("issue_refund", risk="high")
    (a,) = feed(Pipeline(), r.events)
    assert a.kind == "unapproved_high_risk" and a.tool_name == "issue_refund" and a.severity == "critical"


def test_high_risk_with_approval_or_blocked_is_fine() -> None:
    r = RunScript(11)
    r.tool("issue_refund", risk="high", approval_ref="appr-1")
    r.approval("call-9")
    r.tool("issue_refund", risk="high", call_id="call-9")
    r.tool("issue_refund", risk="high", status="blocked")
    r.tool("lookup_order", risk="medium")
    assert feed(Pipeline(), r.events) == []


# -- 7. unauthenticated call, shared credential ----------------------------------------------------


def test_unauthenticated_tool_call() -> None:
    r = RunScript(12, credential=None)
    r.tool()
    (a,) = feed(Pipeline(), r.events)
    assert a.kind == "unauthenticated_tool" and a.credential_fingerprint is None and a.scope == "agent:refund-assistant"


def test_authenticated_tool_call_is_fine() -> None:
    r = RunScript(13)
    r.tool()
    assert feed(Pipeline(), r.events) == []


def test_shared_credential_across_agents() -> None:
    a_run = RunScript(14, agent_id="refund-assistant", credential="fp-shared")
    b_run = RunScript(15, agent_id="billing-bot", credential="fp-shared")
    a_run.tool()
    b_run.tool()
    (a,) = feed(Pipeline(), a_run.events + b_run.events)
    assert a.kind == "shared_credential" and a.observed == 2.0 and a.threshold == 1.0
    assert a.scope == "credential:fp-shared" and a.evidence_event_ids == [b_run.events[0].event_id]


def test_one_agent_many_runs_same_credential_is_fine() -> None:
    runs = [RunScript(16 + i, credential="fp-1") for i in range(3)]
    for r in runs:
        r.tool()
    assert feed(Pipeline(), [e for r in runs for e in r.events]) == []


# -- 8. trace gaps ----------------------------------------------------------------------------------


def test_trace_gap_missing_seq() -> None:
    r = RunScript(20)
    r.start()
    r.model()
    r.tool()
    r.finish()
    p = Pipeline()
    assert feed(p, [e for e in r.events if e.seq != 1]) == []
    out = p.tick(NOW + p.policy.runs.reorder_grace_s)
    (a,) = out.alerts
    assert a.kind == "trace_gaps" and a.observed == 1.0 and "seq 1" in a.summary
    assert out.runs[0].missing_seqs == [1] and a.evidence_trace_ids == [r.trace_id] and a.evidence_event_ids == []


def test_trace_gap_run_without_run_finished() -> None:
    r = RunScript(21)
    r.start()
    r.model()
    p = Pipeline()
    feed(p, r.events)
    out = p.tick(NOW + p.policy.runs.inactivity_timeout_s)
    assert out.runs[0].outcome == "timed_out" and kinds(out.alerts) == ["trace_gaps"]


def test_complete_run_has_no_trace_gap() -> None:
    r = RunScript(22)
    r.start()
    r.model()
    r.finish()
    p = Pipeline()
    out = feed(p, r.events)
    assert out == [] and p.tick(NOW + 10_000).alerts == []
