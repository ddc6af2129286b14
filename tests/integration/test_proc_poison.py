"""Poison events against the real worker and broker: each is isolated (DLQ with a reason, or summarized
within bounds) and the later events of the same partition are processed (issue 20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import uid, wait_until
from tests.integration.test_proc_worker import comparable, reference_summaries, scripted_runs
from tests.proc_factory import RunScript
from tests.proc_kafka import CommittedReader, WorkerProcess, committed_offsets, produce_events, setup, wait_for
from tripwire.processors import load_policy
from tripwire.schemas import RunFinished, encode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def finished_with_last_seq(run: RunScript, last_seq: int) -> RunScript:
    """``run`` (start, two model calls) finished with a hostile ``last_seq`` (its own seq, as the model requires)."""
    run.start()
    run.model(0.01)
    run.model(0.02)
    fin = run.finish()
    run.events[-1] = RunFinished(**{**fin.model_dump(), "seq": last_seq, "last_seq": last_seq})
    return run


def test_poison_events_are_isolated_and_later_events_processed(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the event limits (schemas/limits.py) would reject these events first; this is the defence behind
    # them: whatever passes validation, an output that cannot be produced costs one event, never the worker
    monkeypatch.setenv("TRIPWIRE_LIMITS_MAX_ID_CHARS", "1000000")
    monkeypatch.setenv("TRIPWIRE_LIMITS_MAX_SEQ", str(2**62))
    config, topics = setup(kafka_bootstrap, uid("tp"), tmp_path, partitions=1, inactivity_timeout_s=60)
    policy = load_policy(config.policy_path)
    before, after = scripted_runs(2, seed=1), scripted_runs(3, seed=2)
    huge = RunScript(5, run_id="r" * 450_000)  # key + value ~900 KB: its summary would be ~1.35 MB
    huge.start()
    huge.finish()
    wide = finished_with_last_seq(RunScript(6), 500_000)  # seqs 0, 1, 2, 500000: 499,997 missing
    vast = finished_with_last_seq(RunScript(7), 2**62)  # would never finish listing its missing seqs
    good = [e for r in before for e in r.events]
    later = [e for r in [wide, vast, *after] for e in r.events]
    produce_events(kafka_bootstrap, topics.events, good)
    poison_at = produce_events(kafka_bootstrap, topics.events, huge.events)
    produce_events(kafka_bootstrap, topics.events, later)
    total = len(good) + 2 + len(later)

    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    runs_r, dlq_r = CommittedReader(kafka_bootstrap, topics.runs), CommittedReader(kafka_bootstrap, topics.dlq)
    try:
        summaries = wait_for(runs_r, lambda recs: len(recs) >= 7, 90, "7 run summaries", worker)
        dead = wait_for(dlq_r, lambda recs: len(recs) >= 2, 20, "the dead letters", worker)
        wait_until(
            lambda: committed_offsets(kafka_bootstrap, config.group_id, topics.events, 1) == total,
            timeout=30,
            message="every event committed",
        )
        assert worker.alive(), worker.log()[-3000:]
        summaries, dead = runs_r.poll(), dlq_r.poll()
    finally:
        worker.stop()

    # the ~1 MB run: both events in the DLQ with the reason, their bytes kept; no state, no summary
    assert len(dead) == 2
    assert [(d.partition, d.offset) for d in dead] == poison_at
    for d, ev in zip(dead, huge.events, strict=True):
        assert (d.stage, d.error_type, d.source_topic) == ("process", "OutputTooLarge", topics.events)
        assert "runs: the state of its key would be" in d.reason and "limit of 1000000" in d.reason, d.reason
        assert d.value == encode(ev) and d.key == huge.run_id.encode()
    got = {s.run_id: comparable(s) for s in summaries}
    assert len(summaries) == 7 == len(got) and huge.run_id not in got
    # the events around it, before and after in the same partition, exact
    assert got == reference_summaries(good + later, policy)
    # hostile last_seq: summarized within bounds (hand-computed: seqs 0, 1, 2 and last_seq seen)
    w, v = got[wide.run_id], got[vast.run_id]
    assert (w["missing_seq_count"], w["seq_gaps"], w["missing_seqs"]) == (500_000 - 3, 1, list(range(3, 1003)))
    assert (v["missing_seq_count"], v["seq_gaps"], v["missing_seqs"]) == (2**62 - 3, 1, list(range(3, 1003)))
    assert w["outcome"] == v["outcome"] == "success" and w["cost_usd"] == v["cost_usd"] == 0.03
