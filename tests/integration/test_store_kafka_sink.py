"""Loss and duplication with the real Kafka broker and chdb.

1. ClickHouse refuses N consecutive inserts, then recovers: every row arrives exactly once,
   offsets are committed only after the accepted batch.
2. The consumer group's offsets are rewound to the beginning and everything is replayed:
   exact counts and cost sums do not change (high-water marks), rollups neither.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests import store_helpers as h
from tests.helpers import create_topics, uid, wait_until
from tests.store_helpers import chdb_store, table_count  # noqa: F401 - fixture
from tripwire.schemas import encode, topic_names
from tripwire.sinks import SinkSettings, Store, StoreError
from tripwire.sinks.kafka_sink import KafkaSink

pytestmark = pytest.mark.integration

N_RUNS = 60  # x 3 events + 1 summary each
FAILURES = 4


class FlakyStore(Store):
    """Delegates to a real store; the first query and the first ``fail`` inserts raise like an
    unreachable server."""

    def __init__(self, inner: Store, fail: int) -> None:
        self.inner, self.fail = inner, fail
        self.failed_queries = 0
        self.backend, self.database, self.readonly = inner.backend, inner.database, inner.readonly
        self.supports_avro_insert = inner.supports_avro_insert
        self.refused = 0

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.inner.command(sql, params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None):  # type: ignore[no-untyped-def]
        if self.failed_queries == 0:
            self.failed_queries += 1
            raise StoreError("Code: 210. Connection refused (simulated outage)", code=210, name="NETWORK_ERROR")
        return self.inner.query(sql, params)

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None):  # type: ignore[no-untyped-def]
        return self.inner.query_df(sql, params)

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> int:
        if self.refused < self.fail:
            self.refused += 1
            raise StoreError("Code: 210. Connection refused (simulated outage)", code=210, name="NETWORK_ERROR")
        return self.inner.insert(table, columns, rows, dedup_token=dedup_token)

    def insert_avro(
        self, table: str, columns: Sequence[str], container: bytes, *, dedup_token: str | None = None
    ) -> None:
        if self.refused < self.fail:
            self.refused += 1
            raise StoreError("Code: 210. Connection refused (simulated outage)", code=210, name="NETWORK_ERROR")
        self.inner.insert_avro(table, columns, container, dedup_token=dedup_token)

    def close(self) -> None:
        pass


def _produce(bootstrap: str, topics) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    total_cost = 0.0
    n_model_calls = 0
    for i in range(N_RUNS):
        run = f"run-{i:04d}"
        cost = round(0.001 * (i + 1), 6)
        for rec in (
            h.run_started(run),
            h.model_call(run, 1, cost=cost),
            h.tool_call(run, 2),
        ):
            p.produce(topics.events, key=run.encode(), value=encode(rec))
        p.produce(topics.runs, key=run.encode(), value=encode(h.run_summary(run, cost=cost)))
        total_cost += cost
        n_model_calls += 1
    p.produce(topics.events, key=b"bad", value=b"\xc3\x01not-avro")  # a dead letter
    assert p.flush(30) == 0
    return n_model_calls, total_cost


def _end_offsets(bootstrap: str, names: list[str]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uid("probe")})
    out = {}
    try:
        for t in names:
            md = c.list_topics(t, timeout=10).topics[t]
            for p in md.partitions:
                _lo, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                out[(t, p)] = hi
    finally:
        c.close()
    return out


def _committed(bootstrap: str, group: str, keys) -> dict[tuple[str, int], int]:  # type: ignore[no-untyped-def]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
        return {(tp.topic, tp.partition): tp.offset for tp in got}
    finally:
        c.close()


def _run_sink(sink: KafkaSink, done) -> None:  # type: ignore[no-untyped-def]
    t = threading.Thread(target=sink.run, kwargs={"until": done}, daemon=True)
    t.start()
    t.join(timeout=90)
    assert not t.is_alive(), "sink did not finish in time"


def _snapshot(store: Store) -> dict[str, Any]:
    return {
        "model_calls": table_count(store, "model_calls"),
        "tool_calls": table_count(store, "tool_calls"),
        "run_events": table_count(store, "run_events"),
        "run_summaries": table_count(store, "run_summaries"),
        "dead_letters": table_count(store, "dead_letters"),
        "cost": round(float(store.query("SELECT sum(cost_usd) FROM model_calls").scalar()), 9),
        "summary_cost": round(float(store.query("SELECT sum(cost_usd) FROM run_summaries FINAL").scalar()), 9),
        "rollup": store.query("SELECT sum(calls), round(sum(cost_usd), 9) FROM model_calls_1m").rows[0],
        "distinct_events": int(store.query("SELECT uniqExact(event_id) FROM model_calls").scalar()),
    }


@pytest.mark.parametrize("validate_events", [True, False], ids=["python-decode", "clickhouse-decode"])
def test_outage_then_rewind_every_row_exactly_once(kafka_bootstrap: str, chdb_store, validate_events: bool) -> None:  # noqa: F811
    store = chdb_store
    topics = topic_names(uid("tw"))
    create_topics(
        kafka_bootstrap,
        {topics.events: 3, topics.runs: 3, topics.metrics: 1, topics.alerts: 1, topics.killswitch: 1, topics.dlq: 1},
    )
    n_calls, total_cost = _produce(kafka_bootstrap, topics)
    ends = _end_offsets(kafka_bootstrap, list(topics.all()))
    group = uid("g")
    settings = SinkSettings(
        bootstrap=kafka_bootstrap,
        group_id=group,
        batch_rows=40,
        batch_seconds=0.2,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        poll_timeout_s=0.05,
        validate_events=validate_events,
    )

    # 1. outage: the first FAILURES inserts are refused
    flaky = FlakyStore(store, FAILURES)
    sink = KafkaSink(flaky, settings, topics=topics)
    _run_sink(
        sink,
        lambda: (
            sink.sink.stats.messages >= sum(ends.values())
            and sink.sink.buffered_rows == 0
            and sink.sink.pending_batches == 0
            and sink.commits > 0
            and flaky.refused == FAILURES
        ),
    )
    assert flaky.refused == FAILURES
    assert flaky.failed_queries == 1  # the replay marks of the first partition could not be loaded at first
    assert sink.sink.stats.insert_failures == FAILURES + 1
    first = _snapshot(store)
    expected = {
        "model_calls": n_calls,
        "tool_calls": N_RUNS,
        "run_events": N_RUNS,
        "run_summaries": N_RUNS,
        "dead_letters": 1,
        "cost": round(total_cost, 9),
        "summary_cost": round(total_cost, 9),
        "rollup": (n_calls, round(total_cost, 9)),
        "distinct_events": n_calls,
    }
    assert first == expected
    nonempty = {k: v for k, v in ends.items() if v > 0}
    assert wait_until(lambda: _committed(kafka_bootstrap, group, nonempty) == nonempty, 15, message="commits")

    # 2. rewind the group to the beginning and replay everything
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    fut = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, 0) for (t, p) in nonempty])]
    )
    for f in fut.values():
        f.result(timeout=30)
    assert _committed(kafka_bootstrap, group, nonempty) == dict.fromkeys(nonempty, 0)
    replay = KafkaSink(store, settings, topics=topics)
    _run_sink(
        replay,
        lambda: (
            replay.sink.stats.messages >= sum(ends.values()) and replay.sink.buffered_rows == 0 and replay.commits > 0
        ),
    )
    assert replay.sink.stats.deduplicated == sum(ends.values())
    assert replay.sink.stats.rows_inserted == 0
    assert _snapshot(store) == expected
    assert wait_until(lambda: _committed(kafka_bootstrap, group, nonempty) == nonempty, 15, message="re-commits")
