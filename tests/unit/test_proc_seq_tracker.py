"""SeqTracker (issue 20): a run's seqs in bounded memory; dedup exact in order and for reordering
up to MAX_ABOVE deep; missing seqs counted exactly; a 200k-event run's state stays small."""

from __future__ import annotations

import copy
import random

import pytest

from tests.proc_factory import RunScript
from tripwire.processors import RunAggregator, RunState, default_policy
from tripwire.processors._seq_tracker import MAX_ABOVE, MAX_LOST_RANGES, SeqTracker
from tripwire.processors.stages import RunStage

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def test_in_order_keeps_nothing_but_the_low_water_mark() -> None:
    t = SeqTracker()
    assert all(t.add(s) for s in range(200_000))
    assert (t.low, t.above, len(t), t.high) == (200_000, set(), 200_000, 199_999)
    assert not t.add(0) and not t.add(199_999) and len(t) == 200_000  # duplicates
    assert t.complete(199_999) and t.missing_ranges(199_999) == [] and t.missing_counts(199_999) == (0, 0)


def test_shuffled_windows_with_duplicates_count_exactly() -> None:
    rng = random.Random(7)
    seqs = list(range(200_000))
    order: list[int] = []
    for i in range(0, len(seqs), 1000):  # each window of 1,000 seqs arrives shuffled
        window = seqs[i : i + 1000]
        rng.shuffle(window)
        order.extend(window)
    order += rng.sample(seqs, 5000)  # 5,000 late duplicates
    t = SeqTracker()
    applied = sum(t.add(s) for s in order)
    assert applied == len(t) == 200_000 and t.low == 200_000 and not t.above and t.lost == 0


def test_holes_are_counted_as_ranges_and_seqs() -> None:
    t = SeqTracker.of([0, 1, 4, 5, 9])
    assert t.missing_ranges(12) == [(2, 3), (6, 8), (10, 12)]
    assert t.missing_counts(12) == (8, 3)  # 8 missing seqs in 3 gaps
    assert t.add(3) and t.missing_counts(12) == (7, 3)
    assert not t.add(3)


def test_a_hole_deeper_than_max_above_is_given_up_and_still_counted() -> None:
    t = SeqTracker()
    t.add(0)
    for s in range(10, 10 + MAX_ABOVE + 1):  # seqs 1..9 never come; MAX_ABOVE + 1 wait above them
        assert t.add(s)
    assert t.low == 11 + MAX_ABOVE and t.above == set()  # the hole is given up ...
    assert (t.lost, t.lost_ranges, t.lost_ranges_n) == (9, [[1, 9]], 1)
    last = 10 + MAX_ABOVE
    assert t.missing_ranges(last) == [(1, 9)] and t.missing_counts(last) == (9, 1) and not t.complete(last)
    assert t.add(5) and not t.add(5)  # ... but a late seq in a listed range is still told apart
    assert t.lost_ranges == [[1, 4], [6, 9]] and t.missing_counts(last) == (8, 2)
    for s in (1, 2, 3, 4, 6, 7, 8, 9):
        assert t.add(s)
    assert t.lost == 0 and t.complete(last) and len(t) == last + 1


def test_the_tracker_stays_bounded_with_a_hole_every_other_seq() -> None:
    t = SeqTracker()
    for s in range(0, 400_000, 2):  # every odd seq missing
        t.add(s)
    assert len(t.above) <= MAX_ABOVE and len(t.lost_ranges) == MAX_LOST_RANGES
    n, gaps = t.missing_counts(399_998)
    assert (n, gaps) == (199_999, 199_999) and len(t) == 200_000
    assert len(SeqTracker.from_list(t.to_list()).to_list()[1]) == len(t.above)
    assert SeqTracker.from_list(t.to_list()) == t


@pytest.fixture(scope="module")
def long_run() -> list:
    return _long_run(200_000)


def _long_run(n: int) -> list:
    """A run of ``n`` events: RunStarted, n - 2 tool calls, RunFinished (copies of one tool call)."""
    r = RunScript(5)
    r.start()
    tool = r.tool(name="t", dur_ms=1)
    events = [r.events[0]]
    for s in range(1, n - 1):  # copies (a validated model each would take ~20 s here)
        e = copy.copy(tool)
        e.__dict__.update(seq=s, event_id=f"e-{s}")
        events.append(e)
    r.seq = n - 1
    events.append(r.finish())
    return events


@pytest.mark.parametrize("window", [1, 500])  # in order; shuffled within windows of 500
def test_a_200k_event_run_gives_the_exact_summary_and_a_bounded_state(window: int, long_run: list) -> None:
    # Before: ~45 bytes of state per event (its event_id and seq); the runtime dead-lettered the
    # events of a run past ~11k as "state too large" (its state over half the request limit).
    events = list(long_run)
    rng = random.Random(3)
    arrival: list = []
    for i in range(0, len(events), window):
        chunk = events[i : i + window]
        rng.shuffle(chunk)
        arrival.extend(chunk)
    arrival += rng.sample(events, 300)  # 300 duplicates
    stage = RunStage(default_policy())
    agg = RunAggregator(default_policy().runs)
    st = stage.new_state(events[0].run_id)
    summaries, applied, sizes = [], 0, []
    for i, e in enumerate(arrival):
        ok, out = agg.process(st.run, e, NOW)
        applied += ok
        summaries.extend(out)
        if i in (20_000, 199_000):
            sizes.append(len(stage.dumps(st)))
    [s] = summaries
    assert applied == 200_000
    assert (s.events_seen, s.tool_calls, s.missing_seq_count, s.seq_gaps, s.outcome) == (
        200_000,
        199_998,
        0,
        0,
        "success",
    )
    assert sizes[1] - sizes[0] <= 64  # no growth with the run's length (a few digits of counters)
    assert sizes[1] < 500_000 // 50  # far under the runtime's state limit (half the 1 MB request limit)


def test_a_run_state_built_from_a_set_of_seqs_is_a_tracker() -> None:
    st = RunState(run_id="r", seqs={0, 1, 2, 7}, last_seq=2)
    assert isinstance(st.seqs, SeqTracker) and len(st.seqs) == 4 and 7 in st.seqs and 3 not in st.seqs
    assert RunState.from_dict(st.to_dict()) == st
    agg = RunAggregator(default_policy().runs)
    assert agg.summary(st, NOW).events_seen == 4
