"""One validation, shared (issue 20): hostile but schema-valid events are dead-lettered by the worker
AND by the sink, so the raw tables and the run summaries agree and a tenant's cost sum stays exact."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import create_topics, uid
from tests.proc_factory import RunScript
from tests.proc_kafka import CommittedReader, WorkerProcess, produce, produce_events, setup, wait_for
from tests.store_helpers import chdb_store, table_count  # noqa: F401 - fixture
from tripwire.schemas import ModelCall, topic_names
from tripwire.sinks import SinkSettings
from tripwire.sinks.kafka_sink import KafkaSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # within the raw tables' TTL


def ordinary_runs(n: int) -> list[RunScript]:
    runs = []
    for i in range(n):
        r = RunScript(300 + i, agent_id=f"agent-{i % 2}", credential=f"fp-{i}", start=RECENT)
        r.start()
        r.model(0.05 + i * 0.001, input_tokens=100 + i, output=20 + i)
        r.tool("lookup_order")
        r.model(0.125, model="claude-sonnet-4-5", provider="anthropic", input_tokens=50, output=5)
        r.finish()
        runs.append(r)
    return runs


def hostile_run() -> tuple[RunScript, list[ModelCall]]:
    """A run whose 2nd, 3rd, 4th and 5th events break a limit (the rest are fine)."""
    r = RunScript(42, agent_id="agent-0", credential=None, start=RECENT)
    r.start()
    bad = [r.model(1e308), r.model(1e12)]
    far = datetime(9999, 1, 1, tzinfo=UTC)
    bad.append(r.model(0.5, ts_start=far, ts_end=far))
    bad.append(r.model(0.5, seq=2**62))
    r.model(0.25)  # seq 5: the factory numbers in emission order, the event at 2**62 took slot 4
    r.finish()  # seq and last_seq 6
    return r, bad


def test_a_1e308_cost_is_dead_lettered_by_worker_and_sink_and_sums_stay_exact(
    kafka_bootstrap: str,
    tmp_path: Path,
    chdb_store,  # noqa: F811
) -> None:
    config, topics = setup(kafka_bootstrap, uid("tp"), tmp_path, partitions=2, inactivity_timeout_s=60)
    create_topics(kafka_bootstrap, {topic_names(config.topic_prefix).killswitch: 1})  # the sink reads it too
    runs = ordinary_runs(4)
    hostile, bad = hostile_run()
    events = [e for r in [*runs, hostile] for e in r.events]
    where = dict(zip((e.event_id for e in events), produce_events(kafka_bootstrap, topics.events, events), strict=True))
    produce(kafka_bootstrap, topics.events, [(b"junk", b"\xc3\x01not-avro")])
    good = [e for e in events if e not in bad]
    want_cost = round(sum(e.cost_usd for e in good if isinstance(e, ModelCall) and e.cost_usd is not None), 9)

    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    runs_r, dlq_r = CommittedReader(kafka_bootstrap, topics.runs), CommittedReader(kafka_bootstrap, topics.dlq)
    try:
        summaries = wait_for(runs_r, lambda recs: len(recs) >= 5, 60, "5 run summaries", worker)
        dead = wait_for(dlq_r, lambda recs: len(recs) >= 5, 20, "5 dead letters", worker)
    finally:
        worker.stop()
    summaries, dead = runs_r.poll(), dlq_r.poll()
    others = [CommittedReader(kafka_bootstrap, t) for t in (topics.metrics, topics.alerts)]
    published = len(events) + 1 + len(summaries) + len(dead) + sum(len(r.poll()) for r in others)
    # the worker: each hostile event dead-lettered with the reason, at stage validate
    limit_dead = sorted((d.partition, d.offset, d.reason) for d in dead if d.error_type == "LimitExceeded")
    assert [(p, o) for p, o, _ in limit_dead] == sorted(where[e.event_id] for e in bad)
    reasons = sorted(r for _, _, r in limit_dead)
    assert reasons[0].startswith("cost_usd 1000000000000.0 is over the per-call limit of 1000.0")
    assert reasons[1].startswith("cost_usd 1e+308 is over the per-call limit of 1000.0")
    assert reasons[2] == f"seq {2**62} is over the limit of 1000000"
    assert reasons[3].startswith("ts_start 9999-01-01T00:00:00+00:00 is outside the accepted window")
    assert {d.stage for d in dead if d.error_type == "LimitExceeded"} == {"validate"}
    h = next(s for s in summaries if s.run_id == hostile.run_id)
    assert (h.outcome, h.cost_usd, h.model_calls, h.missing_seq_count, h.missing_seqs) == (
        "success",
        0.25,
        1,
        4,
        [1, 2, 3, 4],
    )  # closed at RunFinished after the reorder grace, not timed out

    # the sink, on the same topics: rejects the same events, stores the rest
    store = chdb_store
    settings = SinkSettings(
        bootstrap=kafka_bootstrap, group_id=uid("g"), batch_seconds=0.2, poll_timeout_s=0.05, validate_events=True
    )
    sink = KafkaSink(store, settings, topics=topic_names(config.topic_prefix))
    t = threading.Thread(
        target=sink.run,
        kwargs={
            "until": lambda: (
                sink.sink.stats.messages >= published
                and not sink.sink.buffered_rows
                and not sink.sink.pending_batches
                and sink.commits
            )
        },
        daemon=True,
    )
    t.start()
    t.join(timeout=90)
    assert not t.is_alive(), f"sink did not finish in time: {published} messages, {sink.sink.stats}"
    assert table_count(store, "model_calls") == sum(isinstance(e, ModelCall) for e in good), (
        sink.sink.stats,
        published,
        store.query("SELECT src_topic, count() FROM dead_letters GROUP BY src_topic").rows,
        store.query("SELECT count() FROM run_summaries").rows,
    )
    tenant = store.query("SELECT sum(cost_usd), isFinite(sum(cost_usd)) FROM model_calls WHERE tenant = 'acme'").rows
    assert round(tenant[0][0], 9) == want_cost and tenant[0][1] == 1
    summed = store.query("SELECT sum(cost_usd) FROM run_summaries FINAL WHERE tenant = 'acme'").scalar()
    assert round(float(summed), 9) == want_cost  # raw tables and summaries agree
    rows = store.query(
        "SELECT partition, offset, stage FROM dead_letters"
        f" WHERE source_topic = '{topics.events}' AND error_type = 'LimitExceeded' ORDER BY partition, offset"
    ).rows
    assert [(p, o) for p, o, _ in rows] == sorted(where[e.event_id] for e in bad)  # each once (issue 20, 4.)
    assert {s for _, _, s in rows} == {"validate"}
