"""Partials: what the runs stage forwards per agent / credential key instead of the events.

Merging partials must give what folding the events one by one gives: the same windows (exact
figures and sketch bins), the same detector alerts (counts, evidence), the same credential alerts.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from tests.proc_factory import T0, RunScript
from tripwire.processors import default_policy, policy_from_dict
from tripwire.processors.partials import (
    AgentPartial,
    CredentialPartial,
    PartialError,
    decode_partial,
    encode_partial,
)
from tripwire.processors.sketch import LatencySketch
from tripwire.processors.stages import AgentStage, CredentialStage

pytestmark = pytest.mark.unit

NOW = 1_900_000_000.0
# low thresholds so that every agent detector fires on the random stream below
POLICY = policy_from_dict(
    {
        "detectors": {
            "tool_error_rate": {"min_calls": 3, "threshold": 0.2},
            "cost_spike": {"warmup_minutes": 2, "min_usd": 0.05},
            "shared_credential": {"max_agents": 2},
        },
        "latency_windows": {"revise_for_s": 600},
    }
)


def _calls(n: int, seed: int) -> list:
    """``n`` model and tool calls of two agents, versions and tools over ~6 minutes, out of order."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        start = T0 + timedelta(seconds=rng.uniform(0, 360))
        r = RunScript(seed * 10_000 + i, agent_id="a", agent_version=rng.choice(["1", "2"]), start=start,
                      credential=rng.choice(["fp-1", None]))  # fmt: skip
        if rng.random() < 0.5:
            cost = 3.0 if i > n * 0.8 and rng.random() < 0.3 else rng.uniform(0.01, 0.05)
            r.model(cost, dur_ms=rng.lognormvariate(6, 1), status=rng.choice(["ok", "ok", "error"]))
        else:
            r.tool(rng.choice(["search", "refund"]), dur_ms=rng.uniform(0, 900),
                   status=rng.choice(["ok", "ok", "error", "timeout"]))  # fmt: skip
        events.append(r.events[-1])
    return events


def _figures(stats) -> tuple:  # type: ignore[no-untyped-def]
    sk = LatencySketch.from_bytes(stats.sketch)
    return (stats.count, stats.errors, round(stats.cost_usd, 9), stats.min_ms, stats.max_ms, round(stats.sum_ms, 6),
            sorted(sk.bins.items()), sk.zero_count)  # fmt: skip


def _latest(metrics: list) -> dict:
    out: dict = {}
    for w in metrics:
        out[(w.agent_version, w.kind, w.name, w.window_start)] = _figures(w)  # later emissions replace
    return out


def _by_events(stage: AgentStage, events: list) -> tuple[dict, list]:
    st = stage.new_state("acme|a")
    metrics, alerts = [], []
    for e in events:
        out = stage.process(st, e, NOW).outputs
        metrics += out.metrics
        alerts += out.alerts
    out = stage.tick(st, NOW + 3600)
    return _latest(metrics + out.metrics), alerts


def _by_partials(stage: AgentStage, events: list, size: int, limit: int | None = None) -> tuple[dict, list]:
    st = stage.new_state("acme|a")
    metrics, alerts = [], []
    for i in range(0, len(events), size):
        p = stage.new_partial()
        for e in events[i : i + size]:
            stage.contribute(p, e)
        records = encode_partial(p) if limit is None else encode_partial(p, limit)
        for rec in records:
            out = stage.process(st, decode_partial(rec), NOW).outputs
            metrics += out.metrics
            alerts += out.alerts
    out = stage.tick(st, NOW + 3600)
    return _latest(metrics + out.metrics), alerts


def _detector_alerts(alerts: list) -> list:
    return [
        (a.kind, a.count, a.observed, a.evidence_event_ids, a.incident_id) for a in alerts if a.kind != "latency_slo"
    ]


@pytest.mark.parametrize("size", [1, 7, 50, 400])
def test_merged_partials_give_the_windows_and_alerts_of_the_events(size: int) -> None:
    stage = AgentStage(POLICY)
    events = _calls(400, seed=1)
    want_windows, want_alerts = _by_events(stage, events)
    got_windows, got_alerts = _by_partials(stage, events, size)
    assert len(want_windows) >= 20  # 2 versions x 3 names x ~6 minutes
    assert got_windows == want_windows
    kinds = {a[0] for a in _detector_alerts(want_alerts)}
    assert {"tool_error_rate", "cost_spike", "unauthenticated_tool"} <= kinds
    assert _detector_alerts(got_alerts) == _detector_alerts(want_alerts)


def test_a_partial_split_under_the_record_limit_merges_to_the_same_result() -> None:
    stage = AgentStage(POLICY)
    events = _calls(300, seed=3)
    p = AgentPartial()
    for e in events:
        stage.contribute(p, e)
    records = encode_partial(p, limit=4000)
    assert len(records) > 5 and all(len(r) <= 4000 for r in records)
    assert sum(decode_partial(r).events for r in records) == 300  # the first piece counts them
    split_windows, split_alerts = _by_partials(stage, events, 300, limit=4000)
    whole_windows, whole_alerts = _by_partials(stage, events, 300)
    assert split_windows == whole_windows == _by_events(stage, events)[0]
    assert _detector_alerts(split_alerts) == _detector_alerts(whole_alerts)


def test_a_window_stays_exact_against_a_recount() -> None:
    stage = AgentStage(default_policy())
    events = _calls(200, seed=11)
    windows, _ = _by_partials(stage, events, 37)
    recount: dict = {}
    for e in events:
        kind = "model" if type(e).__name__ == "ModelCall" else "tool"
        name = e.response_model or e.request_model if kind == "model" else e.tool_name
        start = T0.replace(second=0) + timedelta(minutes=int((e.ts_end - T0.replace(second=0)).total_seconds() // 60))
        a = recount.setdefault((e.agent_version, kind, name, start), [0, 0])
        a[0] += 1
        a[1] += str(getattr(e.status, "value", e.status)) in ("error", "timeout")
    assert {k: (v[0], v[1]) for k, v in windows.items()} == {k: tuple(v) for k, v in recount.items()}


def test_a_late_partial_revises_its_closed_window_or_is_counted_dropped() -> None:
    policy = policy_from_dict({"latency_windows": {"revise_for_s": 100, "allowed_lateness_s": 1}})
    stage = AgentStage(policy)
    st = stage.new_state("acme|a")
    early = RunScript(1, agent_id="a", start=T0 + timedelta(seconds=10))
    early.tool("search", dur_ms=100)
    closer = RunScript(2, agent_id="a", start=T0 + timedelta(minutes=3))
    closer.tool("search", dur_ms=100)
    late = RunScript(3, agent_id="a", start=T0 + timedelta(seconds=20))
    late.tool("search", dur_ms=300)
    late.tool("search", dur_ms=200)
    assert stage.process(st, early.events[0], NOW).outputs.metrics == []  # nothing closed yet
    closed = stage.process(st, closer.events[0], NOW).outputs.metrics
    assert [(w.count, w.window_start) for w in closed] == [(1, T0)]
    p = stage.new_partial()
    for e in late.events:
        stage.contribute(p, e)
    (revised,) = stage.process(st, p, NOW + 50).outputs.metrics
    assert (revised.window_start, revised.count, revised.max_ms) == (T0, 3, 300.0)
    # the wall clock closes the closer's window; the first window closed over revise_for_s ago: final
    assert [w.window_start for w in stage.tick(st, NOW + 200).metrics] == [T0 + timedelta(minutes=3)]
    assert stage.process(st, p, NOW + 201).outputs.metrics == []
    assert st.data["lw"]["late_dropped"] == 2


def test_credential_partials_give_the_alerts_of_the_events() -> None:
    stage = CredentialStage(POLICY)
    events = []
    for i in range(12):
        r = RunScript(i, agent_id=f"agent-{i % 5}", credential="fp-shared")
        r.start()
        events.append(r.events[0])
    st1 = stage.new_state("fp-shared")
    want = [a for e in events for a in stage.process(st1, e, NOW).outputs.alerts]
    st2 = stage.new_state("fp-shared")
    got = []
    for chunk in (events[:4], events[4:]):
        p = stage.new_partial()
        for e in chunk:
            stage.contribute(p, e)
        (rec,) = encode_partial(p)
        got += stage.process(st2, decode_partial(rec), NOW).outputs.alerts
    assert [(a.kind, a.observed, a.evidence_event_ids, a.summary) for a in got] == [
        (a.kind, a.observed, a.evidence_event_ids, a.summary) for a in want
    ]
    assert len(want) == 1 and want[0].observed == 3.0  # the third agent of a 2-agent limit
    assert st1.data == st2.data


def test_partials_round_trip_and_bad_ones_are_typed_errors() -> None:
    stage = AgentStage(POLICY)
    p = stage.new_partial()
    for e in _calls(20, seed=5):
        stage.contribute(p, e)
    (rec,) = encode_partial(p)
    back = decode_partial(rec)
    assert isinstance(back, AgentPartial)
    assert (back.windows, back.calls, back.events) == (p.windows, p.calls, 20)
    c = CredentialPartial()
    CredentialStage(POLICY).contribute(c, _calls(1, seed=6)[0])
    (crec,) = encode_partial(c)
    assert decode_partial(crec) == c
    for bad in (b"TWB\x01\x00\x00\x00\x00", b"TWP\x01{not json", b'TWP\x01{"n":1,"w":[1],"c":[]}', b'TWP\x01{"n":1}'):
        with pytest.raises(PartialError):
            decode_partial(bad)
