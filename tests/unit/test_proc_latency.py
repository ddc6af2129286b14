"""LatencyWindows and the DDSketch: exact counts, quantiles within the sketch's 1% bound."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tests.proc_factory import T0, RunScript
from tripwire.processors import LatencySketch, LatencyWindows, default_policy, policy_from_dict

pytestmark = pytest.mark.unit

NOW = 1_900_000_000.0
POLICY = default_policy().latency_windows
ACC = POLICY.relative_accuracy


def test_window_counts_errors_cost_and_bounds() -> None:
    lw = LatencyWindows(POLICY)
    st = lw.new_state()
    r = RunScript(3, start=T0 + timedelta(seconds=5))
    r.model(0.25, dur_ms=1000)
    r.model(0.5, dur_ms=3000, status="error")
    r.model(None, dur_ms=2000, status="timeout")
    r.tool("search", dur_ms=40)
    out = []
    for e in r.events:
        out.extend(lw.process(st, e, NOW))
    assert out == []  # the watermark has not passed end + lateness
    r.at = T0 + timedelta(seconds=60 + POLICY.allowed_lateness_s)
    closer = r.tool("search", dur_ms=0)  # ends exactly at the horizon of the first window
    closed = lw.process(st, closer, NOW)
    assert [(c.stats.kind, c.stats.name) for c in closed] == [("model", "gpt-4o"), ("tool", "search")]
    m, t = (c.stats for c in closed)
    assert (m.count, m.errors, m.cost_usd, m.min_ms, m.max_ms, m.sum_ms) == (3, 2, 0.75, 1000.0, 3000.0, 6000.0)
    assert m.window_start == T0 and m.window_end == T0 + timedelta(minutes=1)
    assert m.model == "gpt-4o" and t.model == "" and t.count == 1 and t.errors == 0
    for q, exact in ((m.p50_ms, 2000.0), (m.p95_ms, 2000.0), (m.p99_ms, 2000.0)):
        assert abs(q - exact) <= ACC * exact  # rank q*(n-1) = 1.9 -> the 2nd smallest value
    assert closed[1].slowest == (r.events[3].event_id, r.events[3].trace_id)
    assert closed[0].slowest == (r.events[1].event_id, r.events[1].trace_id)
    sk = LatencySketch.from_bytes(m.sketch)
    assert sk.count == 3 and abs(sk.quantile(0.0) - 1000.0) <= ACC * 1000.0


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal"])
def test_quantiles_match_numpy_within_relative_accuracy(dist: str) -> None:
    rng = np.random.default_rng(7)
    if dist == "lognormal":
        xs = rng.lognormal(6, 1.2, 3000)
    elif dist == "uniform":
        xs = rng.uniform(5, 5000, 3000)
    else:
        xs = np.concatenate([rng.normal(80, 5, 2000), rng.normal(4000, 300, 1000)])
    lw = LatencyWindows(POLICY)
    st = lw.new_state()
    r = RunScript(4)
    for x in xs:
        r.at = T0 + timedelta(seconds=1)
        lw.process(st, r.tool("search", dur_ms=float(x)), NOW)
    (closed,) = lw.tick(st, NOW + 1000)
    s = closed.stats
    # the event's latency is a difference of microsecond timestamps
    lat = np.array([(e.ts_end - e.ts_start) / timedelta(milliseconds=1) for e in r.events])
    for q, got in ((0.5, s.p50_ms), (0.95, s.p95_ms), (0.99, s.p99_ms)):
        exact = float(np.quantile(lat, q, method="lower"))  # DDSketch's rank: q * (n - 1), rounded down
        assert abs(got - exact) <= ACC * exact, (q, got, exact)
    assert s.count == 3000 and s.min_ms == lat.min() and s.max_ms == lat.max()
    assert s.sum_ms == pytest.approx(lat.sum(), rel=1e-12)


def test_sketches_merge_to_the_sketch_of_the_union() -> None:
    rng = np.random.default_rng(3)
    a_vals, b_vals = rng.lognormal(5, 1, 500), rng.lognormal(7, 0.5, 700)
    a, b, both = LatencySketch(ACC), LatencySketch(ACC), LatencySketch(ACC)
    for v in a_vals:
        a.add(float(v))
        both.add(float(v))
    for v in b_vals:
        b.add(float(v))
        both.add(float(v))
    merged = LatencySketch.from_bytes(a.to_bytes())
    merged.merge(LatencySketch.from_bytes(b.to_bytes()))
    assert merged.bins == both.bins and merged.count == 1200
    exact = float(np.quantile(np.concatenate([a_vals, b_vals]), 0.95, method="lower"))
    assert abs(merged.quantile(0.95) - exact) <= ACC * exact
    # the bytes are the standard DDSketch protobuf: the ddsketch library reads them
    assert abs(merged.to_ddsketch().get_quantile_value(0.95) - merged.quantile(0.95)) < 1e-9


def test_late_event_is_dropped_and_counted() -> None:
    lw = LatencyWindows(POLICY.model_copy(update={"revise_for_s": 0.0}))  # no revisions: dropped
    st = lw.new_state()
    r = RunScript(5)
    lw.process(st, r.tool(dur_ms=10), NOW)
    r.at = T0 + timedelta(minutes=5)
    closed = lw.process(st, r.tool(dur_ms=10), NOW)
    assert [c.stats.count for c in closed] == [1]
    r.at = T0 + timedelta(seconds=30)
    assert lw.process(st, r.tool(dur_ms=10), NOW) == [] and st["late_dropped"] == 1


def test_idle_key_closes_on_tick_by_wall_clock_since_last_arrival() -> None:
    policy = policy_from_dict({"latency_windows": {"allowed_lateness_s": 10}}).latency_windows
    lw = LatencyWindows(policy)
    st = lw.new_state()
    r = RunScript(6, start=T0 + timedelta(seconds=50))
    lw.process(st, r.tool(dur_ms=100), NOW)  # watermark = T0 + 50.1 s
    assert lw.tick(st, NOW + 19.8) == []  # 50.1 + 19.8 = 69.9 < 60 + 10
    (c,) = lw.tick(st, NOW + 19.9)
    assert c.stats.count == 1 and lw.tick(st, NOW + 100) == []


def test_state_is_json_round_trippable() -> None:
    import json

    lw = LatencyWindows(POLICY)
    st = lw.new_state()
    r = RunScript(8)
    for d in (10, 20, 30):
        lw.process(st, r.tool(dur_ms=d), NOW)
        st = json.loads(json.dumps(st))
    (c,) = lw.tick(st, NOW + 1000)
    assert c.stats.count == 3 and c.stats.sum_ms == 60.0


def test_a_late_call_revises_its_closed_window_within_revise_for_s() -> None:
    lw = LatencyWindows(POLICY)  # window 60 s, lateness 30 s, revisions for 300 s
    st = lw.new_state()
    r = RunScript(5)
    lw.process(st, r.tool(dur_ms=10), NOW)  # window T0
    r.at = T0 + timedelta(minutes=5)
    (closed,) = lw.process(st, r.tool(dur_ms=10), NOW)
    assert closed.stats.count == 1
    r.at = T0 + timedelta(seconds=30)
    (rev,) = lw.process(st, r.tool(dur_ms=20, status="error"), NOW + 1)  # late: window T0 again, complete
    assert (rev.stats.window_start, rev.stats.count, rev.stats.errors) == (closed.stats.window_start, 2, 1)
    assert LatencySketch.from_bytes(rev.stats.sketch).count == 2 and rev.stats.emitted_at > closed.stats.emitted_at
    r.at = T0 + timedelta(minutes=1)  # window T0+1 min had no call when it closed: emitted now, with one
    (new,) = lw.process(st, r.tool(dur_ms=10), NOW + 2)
    assert (new.stats.window_start, new.stats.count) == (closed.stats.window_start + timedelta(minutes=1), 1)
    assert st["late_dropped"] == 0
    # 300+ s after those windows closed (at NOW), the next close makes them final: a late call is dropped
    r.at = T0 + timedelta(minutes=10)
    lw.process(st, r.tool(dur_ms=10), NOW + 600)
    r.at = T0 + timedelta(seconds=40)
    assert lw.process(st, r.tool(dur_ms=10), NOW + 601) == [] and st["late_dropped"] == 1
    assert all(a["start"] >= (T0 + timedelta(minutes=5)).timestamp() for a in st["c"].values())
