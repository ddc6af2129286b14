"""StateCache: write-behind of operator states (one write per changed key per commit) and the
rebuild of a key after a stage fails half-way through an event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.proc_factory import RunScript
from tripwire.processors import default_policy
from tripwire.processors._state_cache import StateCache
from tripwire.processors.stages import RunStage
from tripwire.processors.tables import applied_of, pack, unpack

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


class _Store(dict):
    """The part of faust's RocksDB store the cache uses: per-partition puts, reads, deletes."""

    def __init__(self) -> None:
        super().__init__()
        self._key_index: dict[bytes, int] = {}
        self.puts = 0

    def _db_for_partition(self, partition: int) -> Any:
        store = self

        class _DB:
            def put(self, key: bytes, value: bytes) -> None:
                store.puts += 1
                store[key] = value

        return _DB()


class _Table:
    def __init__(self) -> None:
        self.data = _Store()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def _run(seed: int = 1) -> RunScript:
    r = RunScript(seed)
    r.start(max_tool_calls=10)
    r.model(0.1)
    r.tool(args="a")
    r.model(0.2)
    return r


def _apply(cache: StateCache, r: RunScript, events: list[Any], partition: int = 0, tid: str | None = None) -> None:
    """Fold ``events`` into the run's state the way the runtime does, marking the key changed."""
    kb = r.run_id.encode()
    for e in events:
        assert cache.stage.process(cache.get(kb, r.run_id), e, NOW).applied
        cache.changed(kb, partition, tid, ("event", e, NOW))


def _folded(stage: RunStage, events: list[Any]) -> bytes:
    st = stage.new_state(events[0].run_id)
    for e in events:
        stage.process(st, e, NOW)
    return stage.dumps(st)


def test_a_key_changed_many_times_is_written_once_per_snapshot_with_its_latest_state() -> None:
    stage, table = RunStage(default_policy()), _Table()
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events, 3, "tid-3")
    assert table.data.puts == 0  # nothing written before the snapshot
    snap = cache.snapshot()
    assert [(k, p, tid) for k, p, tid, _ in snap] == [(kb, 3, "tid-3")]
    assert snap[0][3] == pack(3, _folded(stage, r.events)) == table.data[kb]
    assert table.data.puts == 1 and table.data._key_index[kb] == 3
    assert cache.snapshot() == []  # clean until the next change


def test_a_cold_cache_reads_the_written_state() -> None:
    stage, table = RunStage(default_policy()), _Table()
    r = _run()
    kb = r.run_id.encode()
    first = StateCache(stage, table)
    for e in r.events[:2]:
        stage.process(first.get(kb, r.run_id), e, NOW)
        first.changed(kb, 0, None, ("event", e, NOW))
    first.snapshot()
    second = StateCache(stage, table)  # e.g. after a rebalance
    for e in r.events[2:]:
        stage.process(second.get(kb, r.run_id), e, NOW)
    assert stage.dumps(second.get(kb, r.run_id)) == _folded(stage, r.events)
    assert unpack(table.data[kb])[1] == _folded(stage, r.events[:2])


def test_recover_rebuilds_a_key_without_the_failing_event_and_loses_nothing_before_it() -> None:
    stage, table = RunStage(default_policy()), _Table()
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    good = r.events
    for e in good[:2]:
        stage.process(cache.get(kb, r.run_id), e, NOW)
        cache.changed(kb, 1, None, ("event", e, NOW))
    cache.snapshot()  # events 0-1 written
    for e in good[2:]:
        stage.process(cache.get(kb, r.run_id), e, NOW)
        cache.changed(kb, 1, None, ("event", e, NOW))
    st = cache.get(kb, r.run_id)
    st.run.tool_calls += 1000  # a stage that raised half-way through an event left this behind
    st.det["poison"] = True
    cache.recover(kb, r.run_id)
    assert stage.dumps(cache.get(kb, r.run_id)) == _folded(stage, good)
    assert cache.snapshot()[0][3] == pack(1, _folded(stage, good))


def test_recover_of_a_clean_key_reads_the_table() -> None:
    stage, table = RunStage(default_policy()), _Table()
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events)
    cache.snapshot()
    cache.get(kb, r.run_id).det["poison"] = True
    cache.recover(kb, r.run_id)
    assert stage.dumps(cache.get(kb, r.run_id)) == _folded(stage, r.events)


def test_a_deleted_key_is_deleted_at_the_snapshot_and_a_new_event_starts_it_afresh() -> None:
    stage, table = RunStage(default_policy()), _Table()
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events, 2)
    cache.snapshot()
    cache.delete(kb, 2, None)
    assert cache.peek(kb) is None  # not read back from the table before the delete is written
    cache.recover(kb, r.run_id)  # a failure right after the delete keeps it deleted
    assert cache.peek(kb) is None
    assert cache.snapshot() == [(kb, 2, None, None)] and kb not in table.data

    cache.delete(kb, 2, None)
    late = r.events[-1]
    stage.process(cache.get(kb, r.run_id), late, NOW)  # a fresh state, not the deleted one
    cache.changed(kb, 2, None, ("event", late, NOW))
    cache.recover(kb, r.run_id)
    assert stage.dumps(cache.get(kb, r.run_id)) == _folded(stage, [late])


def test_a_tick_that_emits_nothing_dirties_nothing_but_is_kept_for_a_dirty_key() -> None:
    stage, table = RunStage(default_policy()), _Table()
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    cache.ticked(kb, 0, None, NOW, 0.0, emitted=False)
    assert not cache.dirty
    stage.process(cache.get(kb, r.run_id), r.events[0], NOW)
    cache.changed(kb, 0, None, ("event", r.events[0], NOW))
    cache.ticked(kb, 0, None, NOW + 1, 0.0, emitted=False)
    assert [op[0] for op in cache.dirty[kb].ops] == ["event", "tick"]


def test_the_applied_position_is_written_with_the_state_and_read_back_by_a_cold_cache() -> None:
    stage, table = RunStage(default_policy()), _Table()
    r = _run()
    kb = r.run_id.encode()
    first = StateCache(stage, table)
    for offset, e in enumerate(r.events[:2], start=40):
        assert not first.applied(kb, 2, offset, -1)
        stage.process(first.get(kb, r.run_id), e, NOW)
        first.changed(kb, 2, None, ("event", e, NOW), (offset, -1))
    assert first.applied(kb, 2, 41, -1) and first.applied(kb, 2, 40, -1)
    assert not first.applied(kb, 2, 42, -1) and not first.applied(kb, 2, 41, 0)  # a later record, a later part
    assert not first.applied(kb, 3, 41, -1)  # another partition says nothing
    first.snapshot()
    assert applied_of(table.data[kb]) == (41, -1)
    assert unpack(table.data[kb]) == (2, _folded(stage, r.events[:2]))
    second = StateCache(stage, table)  # a rebalance: the table (the changelog) is the truth
    second.get(kb, r.run_id)
    assert second.applied(kb, 2, 41, -1) and not second.applied(kb, 2, 42, -1)


def test_recover_keeps_the_position_of_the_events_it_replays() -> None:
    stage, table = RunStage(default_policy()), _Table()
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    stage.process(cache.get(kb, r.run_id), r.events[0], NOW)
    cache.changed(kb, 0, None, ("event", r.events[0], NOW), (7, -1))
    cache.snapshot()
    stage.process(cache.get(kb, r.run_id), r.events[1], NOW)
    cache.changed(kb, 0, None, ("event", r.events[1], NOW), (9, -1))
    cache.recover(kb, r.run_id)  # the next event (offset 10) failed
    assert cache.applied(kb, 0, 9, -1) and not cache.applied(kb, 0, 10, -1)
    assert applied_of(cache.snapshot()[0][3]) == (9, -1)


def test_a_value_without_a_position_reads_as_before() -> None:
    stage, table = RunStage(default_policy()), _Table()
    r = _run()
    kb = r.run_id.encode()
    table.data[kb] = pack(1, _folded(stage, r.events))  # written by a release without positions
    cache = StateCache(stage, table)
    assert stage.dumps(cache.get(kb, r.run_id)) == _folded(stage, r.events)
    assert applied_of(table.data[kb]) is None and not cache.applied(kb, 1, 0, -1)
