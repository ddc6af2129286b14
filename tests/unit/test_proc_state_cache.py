"""StateCache: write-behind of operator states (one write per changed key per commit, into the
local store only once committed, with the changelog offset in the same RocksDB write batch), the
rebuild of a key after a stage fails half-way through an event, and the deadline index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rocksdict

from tests.proc_factory import RunScript
from tripwire.processors import default_policy
from tripwire.processors._state_cache import StateCache
from tripwire.processors.stages import RunStage
from tripwire.processors.tables import OFFSET_KEY, applied_of, pack, unpack

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


class _DB:
    """A real RocksDB database (raw bytes, like faust's), counting write batches."""

    def __init__(self, path: Path) -> None:
        self.db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
        self.writes = 0

    def write(self, batch: Any) -> None:
        self.writes += 1
        self.db.write(batch)

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)  # type: ignore[no-any-return]

    def items(self) -> Any:
        return self.db.items()


class _Store:
    """The part of faust's RocksDB store the cache uses: a database per partition, the key index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, _DB] = {}
        self._key_index: dict[bytes, int] = {}

    def _db_for_partition(self, partition: int) -> _DB:
        if partition not in self.dbs:
            self.dbs[partition] = _DB(self.root / f"p{partition}.db")
        return self.dbs[partition]

    @property
    def puts(self) -> int:
        return sum(db.writes for db in self.dbs.values())

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        assert value is not None
        return value

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def get(self, key: bytes) -> bytes | None:
        for db in self.dbs.values():
            value = db.get(key)
            if value is not None:
                return value
        return None


class _Table:
    def __init__(self, root: Path) -> None:
        self.data = _Store(root)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


@pytest.fixture
def table(tmp_path: Path) -> _Table:
    return _Table(tmp_path)


def _commit(cache: StateCache, snap: list[Any], offset: int) -> None:
    """What the runtime does once the snapshot's transaction committed (``Runtime.committed``)."""
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for kb, partition, _tid, value in snap:
        by_partition.setdefault(partition, []).append((kb, value))
    for partition, items in by_partition.items():
        cache.write(partition, items, offset)


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


def test_a_key_changed_many_times_is_written_once_per_snapshot_with_its_latest_state(table: _Table) -> None:
    stage = RunStage(default_policy())
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events, 3, "tid-3")
    assert table.data.puts == 0  # nothing written before the snapshot
    snap = cache.snapshot()
    assert [(k, p, tid) for k, p, tid, _ in snap] == [(kb, 3, "tid-3")]
    assert kb not in table.data and cache.unwritten == {kb: snap[0][3]}  # not before its commit
    _commit(cache, snap, 17)
    assert snap[0][3] == pack(3, _folded(stage, r.events)) == table.data[kb]
    assert table.data.puts == 1 and table.data._key_index[kb] == 3 and cache.unwritten == {}
    assert table.data.dbs[3].get(OFFSET_KEY) == b"17"  # the changelog offset, in the same batch
    assert cache.snapshot() == []  # clean until the next change


def test_a_cold_cache_reads_the_written_state(table: _Table) -> None:
    stage = RunStage(default_policy())
    r = _run()
    kb = r.run_id.encode()
    first = StateCache(stage, table)
    for e in r.events[:2]:
        stage.process(first.get(kb, r.run_id), e, NOW)
        first.changed(kb, 0, None, ("event", e, NOW))
    _commit(first, first.snapshot(), 3)
    second = StateCache(stage, table)  # e.g. after a rebalance
    for e in r.events[2:]:
        stage.process(second.get(kb, r.run_id), e, NOW)
    assert stage.dumps(second.get(kb, r.run_id)) == _folded(stage, r.events)
    assert unpack(table.data[kb])[1] == _folded(stage, r.events[:2])


def test_recover_rebuilds_a_key_without_the_failing_event_and_loses_nothing_before_it(table: _Table) -> None:
    stage = RunStage(default_policy())
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


def test_recover_of_a_clean_key_reads_the_table(table: _Table) -> None:
    stage = RunStage(default_policy())
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events)
    cache.snapshot()
    cache.get(kb, r.run_id).det["poison"] = True
    cache.recover(kb, r.run_id)
    assert stage.dumps(cache.get(kb, r.run_id)) == _folded(stage, r.events)


def test_a_deleted_key_is_deleted_at_the_snapshot_and_a_new_event_starts_it_afresh(table: _Table) -> None:
    stage = RunStage(default_policy())
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


def test_a_tick_that_emits_nothing_dirties_nothing_but_is_kept_for_a_dirty_key(table: _Table) -> None:
    stage = RunStage(default_policy())
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    cache.ticked(kb, 0, None, NOW, 0.0, emitted=False)
    assert not cache.dirty
    stage.process(cache.get(kb, r.run_id), r.events[0], NOW)
    cache.changed(kb, 0, None, ("event", r.events[0], NOW))
    cache.ticked(kb, 0, None, NOW + 1, 0.0, emitted=False)
    assert [op[0] for op in cache.dirty[kb].ops] == ["event", "tick"]


def test_the_applied_position_is_written_with_the_state_and_read_back_by_a_cold_cache(table: _Table) -> None:
    stage = RunStage(default_policy())
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
    _commit(first, first.snapshot(), 0)
    assert applied_of(table.data[kb]) == (41, -1)
    assert unpack(table.data[kb]) == (2, _folded(stage, r.events[:2]))
    second = StateCache(stage, table)  # a rebalance: the table (the changelog) is the truth
    second.get(kb, r.run_id)
    assert second.applied(kb, 2, 41, -1) and not second.applied(kb, 2, 42, -1)


def test_recover_keeps_the_position_of_the_events_it_replays(table: _Table) -> None:
    stage = RunStage(default_policy())
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    stage.process(cache.get(kb, r.run_id), r.events[0], NOW)
    cache.changed(kb, 0, None, ("event", r.events[0], NOW), (7, -1))
    _commit(cache, cache.snapshot(), 0)
    stage.process(cache.get(kb, r.run_id), r.events[1], NOW)
    cache.changed(kb, 0, None, ("event", r.events[1], NOW), (9, -1))
    cache.recover(kb, r.run_id)  # the next event (offset 10) failed
    assert cache.applied(kb, 0, 9, -1) and not cache.applied(kb, 0, 10, -1)
    assert applied_of(cache.snapshot()[0][3]) == (9, -1)


def test_a_value_without_a_position_reads_as_before(table: _Table) -> None:
    stage = RunStage(default_policy())
    r = _run()
    kb = r.run_id.encode()
    cache0 = StateCache(stage, table)
    cache0.write(1, [(kb, pack(1, _folded(stage, r.events)))], 0)  # written by a release without positions
    cache = StateCache(stage, table)
    assert stage.dumps(cache.get(kb, r.run_id)) == _folded(stage, r.events)
    assert applied_of(table.data[kb]) is None and not cache.applied(kb, 1, 0, -1)


def test_a_committed_delete_leaves_the_store(table: _Table) -> None:
    stage = RunStage(default_policy())
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events, 1)
    _commit(cache, cache.snapshot(), 5)
    assert kb in table.data
    cache.delete(kb, 1, None)
    snap = cache.snapshot()
    assert kb in table.data and cache.peek(kb) is None  # the delete is not written before its commit
    _commit(cache, snap, 6)
    assert kb not in table.data and table.data.dbs[1].get(OFFSET_KEY) == b"6" and kb not in table.data._key_index


# -- the deadline index: a tick costs what is due, not what is stored ---------------------------------------


class _CountingStage(RunStage):
    loads_calls = 0

    def loads(self, data: bytes) -> Any:
        _CountingStage.loads_calls += 1
        return super().loads(data)


def test_a_tick_touches_only_the_due_keys_of_100k_stored(table: _Table) -> None:
    stage = _CountingStage(default_policy())
    policy = stage.policy.runs
    states = {}
    for name, r in (("open", _run(1)), ("closed", _run(2))):
        st = stage.new_state(r.run_id)
        for e in r.events:
            stage.process(st, e, NOW)
        states[name] = st
    closed = states["closed"]
    closed.run.closed, closed.run.closed_at = True, NOW  # expires at NOW + closed_retention_s
    quiet_due = NOW + policy.inactivity_timeout_s  # the open runs: their inactivity timeout
    retention_due = NOW + policy.closed_retention_s
    assert stage.due(states["open"]) == quiet_due and stage.due(closed) == retention_due
    first, _later = sorted((quiet_due, retention_due))
    early = states["open"] if first == quiet_due else closed
    late = closed if early is states["open"] else states["open"]
    early_value, late_value = pack(0, stage.dumps(early)), pack(0, stage.dumps(late))
    # 100,000 stored keys of partition 0: 100 due at `first`, the rest at `later`
    items = [(f"k{i:06d}".encode(), early_value if i % 1000 == 0 else late_value) for i in range(100_000)]
    for i in range(0, len(items), 10_000):
        StateCache(stage, table).write(0, items[i : i + 10_000], i)
    cache = StateCache(stage, table)
    _CountingStage.loads_calls = 0
    assert cache.due_keys(0, first - 1) == []  # builds the index from the stored headers, no decode
    assert _CountingStage.loads_calls == 0 and len(cache.index) == 100_000
    for t in range(1000):  # a thousand ticks before anything is due: nothing touched
        assert cache.due_keys(0, first - 1 + t / 1000) == []
    assert cache.index.touched == 0
    due = cache.due_keys(0, first)
    assert sorted(due) == [f"k{i:06d}".encode() for i in range(0, 100_000, 1000)]
    assert cache.index.touched == 100  # the due keys, not the 100,000 stored
    assert cache.due_keys(0, first + 1) == [] and cache.index.touched == 100


def test_a_key_whose_due_moved_later_is_visited_once_then_reindexed(table: _Table) -> None:
    stage = RunStage(default_policy())
    cache = StateCache(stage, table)
    r = _run()
    kb = r.run_id.encode()
    _apply(cache, r, r.events[:1])
    timeout = stage.policy.runs.inactivity_timeout_s
    assert cache.index.at[0] == {kb: NOW + timeout}
    later = r.events[1]
    stage.process(cache.get(kb, r.run_id), later, NOW + 10)  # last_arrival moves 10 s later
    cache.changed(kb, 0, None, ("event", later, NOW + 10))
    assert cache.index.at[0] == {kb: NOW + timeout}  # the earlier entry stays
    assert cache.due_keys(0, NOW + timeout) == [kb]  # visited: its tick does nothing ...
    cache.ticked(kb, 0, None, NOW + timeout, 0.0, emitted=False)
    assert cache.index.at[0] == {kb: NOW + 10 + timeout}  # ... and it is due again at its new time
    assert cache.due_keys(0, NOW + timeout + 5) == [] and cache.index.touched == 1


def test_stored_values_with_an_applied_position_are_indexed_from_their_header(table: _Table) -> None:
    stage = _CountingStage(default_policy())
    r = _run(3)
    st = stage.new_state(r.run_id)
    for e in r.events:
        stage.process(st, e, NOW)
    due = stage.due(st)
    assert due is not None
    with_pos, without = pack(0, stage.dumps(st), (12, -1)), pack(0, stage.dumps(st))
    StateCache(stage, table).write(0, [(b"with", with_pos), (b"without", without)], 0)
    cache = StateCache(stage, table)
    _CountingStage.loads_calls = 0
    assert cache.due_keys(0, due - 1) == [] and len(cache.index) == 2
    assert _CountingStage.loads_calls == 0  # the due read behind the position, no decode
    assert sorted(cache.due_keys(0, due)) == [b"with", b"without"]
    assert stage.dumps(cache.get(b"with", r.run_id)) == stage.dumps(st) and cache.applied(b"with", 0, 12, -1)


def test_extend_indexes_stored_keys_at_once_and_keeps_keys_indexed_from_newer_states() -> None:
    from tripwire.processors._state_cache import DeadlineIndex

    index = DeadlineIndex()
    index.set(0, b"cached", 5.0)  # indexed from its cached (newer) state: the stored due is stale
    index.extend(0, [(1.0, b"cached"), (3.0, b"b"), (2.0, b"a")])
    assert len(index) == 3
    assert index.pop_due(0, 2.5) == [b"a"]
    assert index.pop_due(0, 4.0) == [b"b"]
    assert index.pop_due(0, 5.0) == [b"cached"]
    index.extend(1, [])  # a partition with nothing stored
    assert index.pop_due(1, 9.0) == [] and len(index) == 0
