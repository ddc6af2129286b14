"""BatchingSink logic against an in-memory Store: thresholds, commit-after-accept, retries with
the same dedup token, backpressure, replay high-water marks, dead letters, poison rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tests import store_helpers as h
from tripwire.schemas import encode, topic_names
from tripwire.sinks import BatchingSink, Message, QueryResult, RowDataError, SinkBackpressureError, Store, StoreError

pytestmark = pytest.mark.unit

T = topic_names("u")


class MemoryStore(Store):
    """Inserted blocks in memory; honours dedup tokens like ClickHouse; can fail on demand."""

    backend = "memory"
    database = "mem"
    readonly = False

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.tokens: set[tuple[str, str]] = set()
        self.fail_next = 0
        self.insert_calls = 0
        self.bad_value: Any = object()
        self.fail_queries = 0
        self.event_id_queries = 0
        self.event_id_bounds: list[tuple[int, int]] = []

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        if self.fail_queries > 0:
            self.fail_queries -= 1
            raise StoreError("Code: 210. NETWORK_ERROR (simulated)", code=210)
        assert params is not None
        if "event_id IN" in sql:  # the event-id dedup lookup (sinks/_event_ids.py)
            table = sql.split(" FROM ")[1].split()[0]
            ids = set(params["ids"].split(","))
            found = {r["event_id"] for r in self.tables.get(table, []) if r["event_id"] in ids}
            if "lo" in params:  # the batch's ts_start range bounds the lookup
                from tripwire.sinks._event_ids import micros

                self.event_id_bounds.append((params["lo"], params["hi"]))
                found = {
                    r["event_id"]
                    for r in self.tables.get(table, [])
                    if r["event_id"] in ids and params["lo"] <= micros(r["ts_start"]) <= params["hi"]
                }
            self.event_id_queries += 1
            return QueryResult(("event_id",), [(i,) for i in sorted(found)])
        assert "sink_offsets" in sql  # otherwise only the high-water-mark query is expected
        marks: dict[tuple[str, str], int] = {}
        for table, rows in self.tables.items():
            for r in rows:
                if table == "sink_offsets":
                    if (r["src_topic"], r["src_partition"]) == (params["topic"], params["partition"]):
                        key = (r["table_name"], r["partition_id"])
                        marks[key] = max(marks.get(key, -1), r["max_offset"])
                elif (r["src_topic"], r["src_partition"]) == (params["topic"], params["partition"]):
                    from tripwire.sinks.rows import TABLES

                    spec = TABLES[table]
                    pid = spec.partition_id(tuple(r[c] for c in spec.insert_columns))
                    marks[(table, pid)] = max(marks.get((table, pid), -1), r["src_offset"])
        return QueryResult(("t", "pid", "m"), [(t, p, m) for (t, p), m in marks.items()])

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> int:
        self.insert_calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StoreError("Code: 242. TABLE_IS_READ_ONLY (simulated)", code=242)
        if any(self.bad_value in r for r in rows):
            raise RowDataError("cannot encode")
        if dedup_token is not None:
            if (table, dedup_token) in self.tokens:
                return 0
            self.tokens.add((table, dedup_token))
        self.tables.setdefault(table, []).extend(dict(zip(columns, r, strict=True)) for r in rows)
        return len(rows)

    def close(self) -> None:
        pass

    def count(self, table: str) -> int:
        return len(self.tables.get(table, []))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _msgs(n: int, partition: int = 0, start: int = 0) -> list[Message]:
    return [
        Message(T.events, partition, start + i, b"r", encode(h.model_call(f"r{partition}-{start + i}", 1, cost=0.5)))
        for i in range(n)
    ]


def test_rows_threshold_triggers_flush_and_commit_offsets_are_next_to_read() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, batch_rows=3, batch_seconds=60, clock=clock)
    for m in _msgs(2):
        sink.add(m)
    assert not sink.should_flush()
    sink.add(_msgs(1, start=2)[0])
    assert sink.should_flush()
    assert sink.flush() == {(T.events, 0): 3}
    assert store.count("model_calls") == 3
    assert sink.stats.rows_inserted == 3


def test_time_threshold() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, batch_rows=1000, batch_seconds=1.0, clock=clock)
    sink.add(_msgs(1)[0])
    assert not sink.should_flush()
    clock.now += 1.0
    assert sink.should_flush()


def test_bytes_threshold() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, batch_rows=10_000, batch_bytes=2048, batch_seconds=60, clock=clock)
    msgs = _msgs(20)
    added = 0
    while not sink.should_flush():
        sink.add(msgs[added])
        added += 1
    per_msg = len(msgs[0].value or b"") + 64
    assert added == -(-2048 // per_msg)


def test_failed_inserts_backpressure_then_exactly_once_with_same_token() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, batch_rows=5, retry_initial_s=0.5, retry_max_s=2.0, clock=clock)
    for m in _msgs(5):
        sink.add(m)
    store.fail_next = 4
    delays = []
    for _ in range(4):
        with pytest.raises(SinkBackpressureError) as ei:
            sink.flush()
        delays.append(ei.value.retry_after)
        assert ei.value.table == "model_calls"
        assert not sink.should_flush()  # not before retry_after
        clock.now += ei.value.retry_after
        assert sink.should_flush()
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert sink.pending_batches == 1
    assert store.count("model_calls") == 0
    assert sink.flush() == {(T.events, 0): 5}
    assert store.count("model_calls") == 5
    assert sink.stats.insert_failures == 4


def test_messages_added_while_failing_are_committed_only_with_their_batch() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, batch_rows=3, clock=clock)
    for m in _msgs(3):
        sink.add(m)
    store.fail_next = 1
    with pytest.raises(SinkBackpressureError):
        sink.flush()
    for m in _msgs(2, start=3):
        sink.add(m)
    clock.now += 10
    assert sink.flush() == {(T.events, 0): 5}
    assert sorted(r["src_offset"] for r in store.tables["model_calls"]) == [0, 1, 2, 3, 4]


def test_ambiguous_failure_retry_is_deduplicated_by_token() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, batch_rows=3, clock=clock)
    for m in _msgs(3):
        sink.add(m)
    real_insert = store.insert

    def insert_then_fail(*a: Any, **kw: Any) -> int:  # the server stored it, the client saw an error
        real_insert(*a, **kw)
        store.insert = real_insert  # type: ignore[method-assign]
        raise StoreError("connection reset")

    store.insert = insert_then_fail  # type: ignore[method-assign]
    with pytest.raises(SinkBackpressureError):
        sink.flush()
    clock.now += 10
    assert sink.flush() == {(T.events, 0): 3}
    assert store.count("model_calls") == 3


def test_replay_after_restart_is_dropped_by_high_water_marks() -> None:
    store = MemoryStore()
    first = BatchingSink(store, T, batch_rows=100)
    for m in _msgs(10):
        first.add(m)
    first.flush()
    second = BatchingSink(store, T, batch_rows=4)  # different batch boundaries on replay
    for m in _msgs(13):
        second.add(m)
    assert second.flush() == {(T.events, 0): 13}
    assert store.count("model_calls") == 13
    assert second.stats.deduplicated == 10
    assert sorted(r["src_offset"] for r in store.tables["model_calls"]) == list(range(13))


def test_high_water_marks_survive_deleted_rows_through_sink_offsets() -> None:
    store = MemoryStore()
    first = BatchingSink(store, T)
    for m in _msgs(4):
        first.add(m)
    first.flush()
    store.tables["model_calls"] = [r for r in store.tables["model_calls"] if r["src_offset"] < 2]  # "deleted"
    second = BatchingSink(store, T)
    for m in _msgs(4):
        second.add(m)
    second.flush()
    assert sorted(r["src_offset"] for r in store.tables["model_calls"]) == [0, 1]


def test_bad_messages_become_dead_letters_and_are_committed() -> None:
    store = MemoryStore()
    sink = BatchingSink(store, T)
    sink.add(Message(T.events, 0, 0, b"k", b"\xc3\x01garbage"))
    sink.add(Message(T.runs, 0, 0, b"k", encode(h.model_call())))
    sink.add(Message(T.events, 0, 1, b"k", None))
    sink.add(Message(T.killswitch, 0, 0, b"scope", None))  # tombstone: nothing to store
    assert sink.flush() == {(T.events, 0): 2, (T.runs, 0): 1, (T.killswitch, 0): 1}
    dl = store.tables["dead_letters"]
    assert [(r["source_topic"], r["offset"], r["stage"], r["error_type"]) for r in dl] == [
        (T.events, 0, "decode", "DecodeError"),
        (T.runs, 0, "sink", "RowMappingError"),
        (T.events, 1, "decode", "EmptyValue"),
    ]
    assert dl[1]["reason"] == "unexpected record type ModelCall on the runs topic"
    assert dl[0]["value"] == b"\xc3\x01garbage"
    assert sink.stats.tombstones == 1


def test_a_row_clickhouse_cannot_encode_is_isolated_and_dead_lettered() -> None:
    store = MemoryStore()
    sink = BatchingSink(store, T)
    msgs = _msgs(7)
    for m in msgs:
        sink.add(m)
    poison = sink._buffers["model_calls"].rows[4]
    store.bad_value = poison[0]  # the event_id of offset 4
    assert sink.flush() == {(T.events, 0): 7}
    assert sorted(r["src_offset"] for r in store.tables["model_calls"]) == [0, 1, 2, 3, 5, 6]
    assert [(r["offset"], r["error_type"], r["stage"]) for r in store.tables["dead_letters"]] == [
        (4, "RowDataError", "sink")
    ]


def test_rows_are_split_per_clickhouse_partition() -> None:
    from datetime import UTC, datetime

    store = MemoryStore()
    sink = BatchingSink(store, T)
    for i, month in enumerate((1, 2, 1)):
        ts = datetime(2026, month, 5, tzinfo=UTC)
        sink.add(Message(T.events, 0, i, b"k", encode(h.model_call(ts=ts))))
    sink.flush()
    assert sink.stats.batches_inserted == 2
    assert store.insert_calls == 3  # two partitions + sink_offsets


def test_forget_drops_unsaved_rows_of_revoked_partitions() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, clock=clock)
    for m in _msgs(3, partition=0) + _msgs(2, partition=1):
        sink.add(m)
    sink.forget([(T.events, 1)])
    assert sink.flush() == {(T.events, 0): 3}
    assert store.count("model_calls") == 3


def test_unreachable_marks_refuse_the_message_without_taking_it() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, retry_initial_s=1.0, clock=clock)
    store.fail_queries = 1
    m = _msgs(1)[0]
    with pytest.raises(SinkBackpressureError) as ei:
        sink.add(m)
    assert ei.value.retry_after == 1.0
    assert (sink.stats.messages, sink.buffered_rows) == (0, 0)
    sink.add(m)  # offered again
    assert sink.flush() == {(T.events, 0): 1}
    assert store.count("model_calls") == 1


# -- issue 20: the shared event limits, and one dead letter per failure ----------------------------


def test_an_event_over_a_limit_is_a_validate_dead_letter_and_no_row_when_validating() -> None:
    from tripwire.schemas import EventLimits

    store = MemoryStore()
    sink = BatchingSink(store, T, limits=EventLimits(max_age_days=36500))
    at = int(h.T0.timestamp() * 1000)
    sink.add(Message(T.events, 0, 0, b"r", encode(h.model_call("r", 1, cost=1e308)), at))
    sink.add(Message(T.events, 0, 1, b"r", encode(h.model_call("r", 2, cost=0.25)), at))
    sink.flush()
    assert [r["cost_usd"] for r in store.tables["model_calls"]] == [0.25]
    (dl,) = store.tables["dead_letters"]
    assert (dl["offset"], dl["stage"], dl["error_type"]) == (0, "validate", "LimitExceeded")
    assert dl["reason"] == "cost_usd 1e+308 is over the per-call limit of 1000.0"
    # trusted mode applies no limit (on either path): the row is stored, no dead letter
    trusted_store = MemoryStore()
    trusted = BatchingSink(trusted_store, T, validate=False, limits=EventLimits(max_age_days=36500))
    trusted.add(Message(T.events, 0, 0, b"r", encode(h.model_call("r", 1, cost=1e308)), at))
    trusted.flush()
    assert [r["cost_usd"] for r in trusted_store.tables["model_calls"]] == [1e308]
    assert "dead_letters" not in trusted_store.tables


def test_the_processors_dead_letter_of_a_message_the_sink_dead_letters_itself_is_stored_once() -> None:
    from tripwire.schemas import dead_letter

    store = MemoryStore()
    sink = BatchingSink(store, T)
    garbage = b"\xc3\x01garbage"
    sink.add(Message(T.events, 0, 0, b"k", garbage))  # the sink's own decode dead letter
    same = dead_letter(T.events, 0, 0, b"k", garbage, stage="decode", reason="bad", error_type="DecodeError")
    other = dead_letter(T.events, 0, 5, b"k", b"x", stage="process", reason="state", error_type="StateError")
    ks = dead_letter(T.killswitch, 0, 0, b"k", garbage, stage="decode", reason="bad", error_type="DecodeError")
    for i, dl in enumerate((same, other, ks)):
        sink.add(Message(T.dlq, 0, i, b"k", encode(dl)))
    sink.flush()
    rows = store.tables["dead_letters"]
    assert sorted((r["source_topic"], r["offset"], r["stage"], r["src_topic"]) for r in rows) == sorted(
        [(T.events, 0, "decode", T.events), (T.events, 5, "process", T.dlq), (T.killswitch, 0, "decode", T.dlq)]
    )
    assert len({r["dlq_id"] for r in rows}) == 3 and sink.stats.deduplicated == 1


def test_an_event_produced_twice_at_new_offsets_is_stored_once() -> None:
    """An exporter retry after a receiver restart: the same event ids again, at higher offsets, to a
    new sink (nothing in memory): the table lookup drops them; repeats within a batch are dropped too."""
    store = MemoryStore()
    events = [h.model_call("r1", 1), h.tool_call("r1", 2), h.run_started("r1")]
    first = BatchingSink(store, T)
    for i, e in enumerate(events):
        first.add(Message(T.events, 0, i, b"r1", encode(e)))
    first.add(Message(T.events, 0, 3, b"r1", encode(events[0])))  # a repeat inside the same batch
    assert first.flush() == {(T.events, 0): 4}
    assert (store.count("model_calls"), store.count("tool_calls"), store.count("run_events")) == (1, 1, 1)
    assert first.stats.deduplicated == 1

    again = BatchingSink(store, T)  # a restarted sink: only the table knows
    for i, e in enumerate(events):
        again.add(Message(T.events, 0, 10 + i, b"r1", encode(e)))
    fresh = h.model_call("r1", 3)
    again.add(Message(T.events, 0, 13, b"r1", encode(fresh)))
    assert again.flush() == {(T.events, 0): 14}
    assert (store.count("model_calls"), store.count("tool_calls"), store.count("run_events")) == (2, 1, 1)
    assert [r["event_id"] for r in store.tables["model_calls"]] == [events[0].event_id, fresh.event_id]
    assert again.stats.deduplicated == 3 and again.stats.rows_inserted == 1
    queries = store.event_id_queries

    again.add(Message(T.events, 0, 14, b"r1", encode(fresh)))  # inserted by this sink: known in memory
    assert again.flush() == {(T.events, 0): 15}
    assert store.count("model_calls") == 2 and store.event_id_queries == queries


def test_an_unreachable_event_id_lookup_backs_off_and_inserts_nothing() -> None:
    store, clock = MemoryStore(), Clock()
    sink = BatchingSink(store, T, clock=clock)
    for m in _msgs(2):
        sink.add(m)  # the marks are loaded here
    store.fail_queries = 1
    with pytest.raises(SinkBackpressureError):
        sink.flush()
    assert store.count("model_calls") == 0 and store.insert_calls == 0
    clock.now += 60
    assert sink.flush() == {(T.events, 0): 2}
    assert store.count("model_calls") == 2


def test_the_event_id_lookup_is_bounded_by_the_batch_ts_start_range() -> None:
    from datetime import timedelta

    from tripwire.sinks._event_ids import micros

    store = MemoryStore()
    early, late = h.model_call("r1", 1), h.model_call("r1", 2, ts=h.T0 + timedelta(minutes=7))
    sink = BatchingSink(store, T)
    sink.add(Message(T.events, 0, 0, b"r1", encode(early)))
    sink.add(Message(T.events, 0, 1, b"r1", encode(late)))
    sink.flush()
    assert store.event_id_bounds == [(micros(h.T0), micros(h.T0 + timedelta(minutes=7)))]


def test_avro_event_id_and_ts_start_are_read_from_every_event_type() -> None:
    import json

    from tripwire.schemas.wire import parse_single_object
    from tripwire.sinks._avro_fast import AvroPlans
    from tripwire.sinks._event_ids import avro_event_id_ts, micros, skip_plan

    plans = AvroPlans()
    events = [h.model_call(), h.tool_call(), h.run_started(), h.approval(), h.run_finished()]
    for e in events:
        data = encode(e)
        head = parse_single_object(data)
        assert head is not None
        branch = plans.branch(head[0], head[1])
        assert branch is not None
        plan = skip_plan(json.loads(branch.schema_json))
        assert avro_event_id_ts(data, head[2], plan) == (e.event_id, micros(e.ts_start)), type(e).__name__
        assert avro_event_id_ts(data[: head[2] + 10], head[2], plan)[1] is None  # truncated: no time
    assert skip_plan({"fields": [{"name": "event_id", "type": "string"}, {"name": "x", "type": "bytes"},
                                 {"name": "ts_start", "type": "long"}]}) is None  # fmt: skip
