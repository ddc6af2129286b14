"""RunAggregator: hand-computed summaries; order and duplicates do not change the result."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from tests.proc_factory import RunScript
from tripwire.processors import RunAggregator, RunState, default_policy

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
POLICY = default_policy().runs


def scripted() -> RunScript:
    r = RunScript(1)
    r.start(max_cost_usd=0.05, max_steps=10, max_tool_calls=5, max_prompt_tokens=1000, max_completion_tokens=500)
    r.model(0.01, input_tokens=100, output=50, dur_ms=400)
    r.tool("lookup_order", dur_ms=100)
    r.model(
        0.02,
        model="claude-sonnet-4-5",
        provider="anthropic",
        input_tokens=200,
        cache_read=100,
        output=80,
        status="error",
        dur_ms=900,
    )
    r.tool("issue_refund", status="blocked", risk="high", dur_ms=5)
    r.approval("call-x")
    r.model(None, input_tokens=10, output=5)  # cost unknown
    r.finish("success")
    return r


def run_all(events, agg: RunAggregator | None = None, now: float = NOW):
    agg = agg or RunAggregator(POLICY)
    state = RunState(run_id=events[0].run_id)
    out = []
    for e in events:
        out.extend(agg.process(state, e, now)[1])
    return state, out


def comparable(summary) -> dict:
    d = summary.model_dump()
    d.pop("emitted_at")
    return d


def test_hand_computed_summary() -> None:
    r = scripted()
    _, out = run_all(r.events)
    assert len(out) == 1
    s = out[0]
    assert s.run_id == r.run_id and s.outcome == "success" and s.version == 1
    assert s.cost_usd == 0.03
    assert s.cost_by_model == {"claude-sonnet-4-5": 0.02, "gpt-4o": 0.01}
    # gpt-4o: input 100 x $2.5 vs output 50 x $10 -> 1/3 : 2/3 of 10,000,000 nano-dollars.
    # claude-sonnet-4-5: 200 x 3 : 100 x 0.3 : 80 x 15 = 600 : 30 : 1200 of 20,000,000.
    assert s.cost_input_usd == (3_333_333 + 6_557_377) / 1e9
    assert s.cost_cache_read_usd == 327_869 / 1e9
    assert s.cost_output_usd == (6_666_667 + 13_114_754) / 1e9
    assert s.cost_cache_write_usd == 0.0 and s.cost_reasoning_usd == 0.0
    assert s.cost_unknown_calls == 1
    assert (s.input_tokens, s.cache_read_tokens, s.cache_write_tokens, s.output_tokens, s.reasoning_tokens) == (
        310,
        100,
        0,
        135,
        0,
    )
    assert (s.steps, s.model_calls, s.tool_calls, s.errors, s.blocked_calls, s.approvals, s.denials) == (
        5,
        3,
        2,
        1,
        1,
        1,
        0,
    )
    assert s.started_at == r.events[0].ts_start and s.ended_at == r.events[-1].ts_end
    assert s.duration_ms == (r.events[-1].ts_end - r.events[0].ts_start) / timedelta(milliseconds=1)
    assert s.budget_cost_pct == pytest.approx(60.0, rel=1e-12)
    assert s.budget_steps_pct == 50.0
    assert s.budget_tool_calls_pct == 40.0
    assert s.budget_prompt_tokens_pct == 41.0
    assert s.budget_completion_tokens_pct == 27.0
    assert s.events_seen == 8 and s.missing_seqs == [] and s.seq_gaps == 0


@pytest.mark.parametrize("seed", range(5))
def test_out_of_order_and_duplicates_give_identical_summary(seed: int) -> None:
    events = scripted().events
    _, reference = run_all(events)
    rng = random.Random(seed)
    shuffled = events + rng.sample(events, 4)  # four duplicates (same event_id)
    rng.shuffle(shuffled)
    _, out = run_all(shuffled)
    assert [comparable(s) for s in out] == [comparable(s) for s in reference]


def test_missing_seq_closes_after_reorder_grace_with_gaps() -> None:
    r = scripted()
    events = [e for e in r.events if e.seq not in (2, 3, 5)]
    agg = RunAggregator(POLICY)
    state, out = run_all(events, agg)
    assert out == []
    assert agg.tick(state, NOW + POLICY.reorder_grace_s - 0.001) == []
    (s,) = agg.tick(state, NOW + POLICY.reorder_grace_s)
    assert s.outcome == "success" and s.missing_seqs == [2, 3, 5] and s.seq_gaps == 2 and s.events_seen == 5


def test_inactivity_timeout_closes_as_timed_out() -> None:
    r = RunScript(2)
    r.start()
    r.model(0.5)
    last = r.tool()
    agg = RunAggregator(POLICY)
    state, out = run_all(r.events, agg)
    assert out == [] and agg.tick(state, NOW + POLICY.inactivity_timeout_s - 1) == []
    (s,) = agg.tick(state, NOW + POLICY.inactivity_timeout_s)
    assert s.outcome == "timed_out" and s.ended_at == last.ts_end and s.cost_usd == 0.5
    assert s.missing_seqs == [] and s.version == 1
    assert agg.tick(state, NOW + 10 * POLICY.inactivity_timeout_s) == []  # closes once


def test_late_event_after_close_publishes_a_revision() -> None:
    r = scripted()
    late = r.events[2]
    agg = RunAggregator(POLICY)
    state, _ = run_all([e for e in r.events if e is not late], agg)
    (first,) = agg.tick(state, NOW + POLICY.reorder_grace_s)
    assert first.missing_seqs == [2] and first.tool_calls == 1
    applied, (second,) = agg.process(state, late, NOW + 20)
    assert applied and second.version == 2 and second.missing_seqs == [] and second.tool_calls == 2
    assert agg.process(state, late, NOW + 21) == (False, [])  # a duplicate changes nothing


def test_state_round_trips_mid_run() -> None:
    events = scripted().events
    _, reference = run_all(events)
    agg = RunAggregator(POLICY)
    state = RunState(run_id=events[0].run_id)
    out = []
    for e in events:
        state = RunState.from_dict(state.to_dict())
        out.extend(agg.process(state, e, NOW)[1])
    assert [comparable(s) for s in out] == [comparable(s) for s in reference]


def test_closed_state_expires_after_retention() -> None:
    agg = RunAggregator(POLICY)
    state, _ = run_all(scripted().events, agg)
    assert not agg.expired(state, NOW + POLICY.closed_retention_s - 1)
    assert agg.expired(state, NOW + POLICY.closed_retention_s)


# -- bounded missing seqs (issue 20) -------------------------------------------------------------


def test_missing_seqs_are_ranges_of_the_seen_seqs_never_a_walk_to_last_seq() -> None:
    st = RunState(run_id="r", seqs={0, 1, 4, 5, 9}, last_seq=12)
    assert st.missing_ranges() == [(2, 3), (6, 8), (10, 12)]
    assert st.missing_seqs() == [2, 3, 6, 7, 8, 10, 11, 12]
    assert st.missing_seqs(limit=4) == [2, 3, 6, 7]
    assert not st.complete()
    assert RunState(run_id="r", seqs={0, 1, 2, 7}, last_seq=2).complete()  # a seq past last_seq is no gap
    assert RunState(run_id="r", seqs={2}, last_seq=None).missing_ranges() == [(0, 1)]  # up to the highest seen
    huge = RunState(run_id="r", seqs={0, 1, 2**62}, last_seq=2**62)  # instant: no list of 2**62 seqs
    assert huge.missing_ranges() == [(2, 2**62 - 1)] and len(huge.missing_seqs(limit=1000)) == 1000


def test_a_summary_lists_the_first_1000_missing_seqs_and_counts_them_all() -> None:
    r = RunScript(3)
    r.start()
    r.model(0.01)
    r.seq = 500_000
    fin = r.finish()
    agg = RunAggregator(POLICY)
    st = RunState(run_id=r.run_id)
    for e in r.events:
        agg.process(st, e, NOW)
    (s,) = agg.tick(st, NOW + POLICY.reorder_grace_s)
    assert fin.last_seq == 500_000
    assert (s.missing_seq_count, s.seq_gaps) == (500_000 - 2, 1)  # seqs 0, 1 and 500,000 seen
    assert s.missing_seqs == list(range(2, 1002))
