"""Decoded operator states of one stage, kept in memory and written behind to its table.

The faust table holds each key's state as bytes (``tables.pack``). Decoding it for every event
(JSON parse + ``from_dict``) and encoding and sending it after every event were most of a
worker's per-event cost, so the cache keeps the decoded state objects of the keys this worker
owns and remembers which changed (dirty). The runtime takes a :meth:`StateCache.snapshot` of the
dirty keys right before each offset commit: one changelog record per changed key, sent in the
transaction that commits the offsets of the messages that changed it. Once that transaction has
committed, the runtime writes the same values into the local store with :meth:`StateCache.write`
(one RocksDB write batch with the changelog offset, ``tables.store_write``); until then the
snapshot's values are read from :attr:`StateCache.unwritten`, never from the store.

Ticks visit only the keys that are due: :class:`DeadlineIndex` holds, per partition, each key's
``stage.due(state)``; it is filled as keys change and, for a partition first ticked in this
consumer generation, from the store (the due time sits in each value's header: no decode).

A stage that raises on an event may leave the key's object half-updated. The cache keeps the
operations applied to each dirty key since its last snapshot, so :meth:`StateCache.recover`
rebuilds the key from the table (its last snapshot) and replays them: the failing event is left
out and nothing before it is lost.

Each key also has its *applied position*: the ``(offset, index)`` of the last input record of its
partition whose effect the state holds, written with the state (``tables.pack``), so a snapshot
and the inputs it covers are one record. :meth:`StateCache.applied` tells the runtime that an
input is at or below it: replayed after its effect was committed (a transaction committed without
its offsets, a snapshot ahead of the offsets committed with it), it is skipped, not applied twice.

The whole cache is dropped when the consumer generation changes (a rebalance): another worker may
have written the keys of a partition that comes back here, and the table, recovered from the
changelog, is the truth. Its dirty keys are dropped with it: their messages were not committed,
so they are read and applied again.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from tripwire.processors.state_format import peek_due
from tripwire.processors.tables import applied_of, pack, partition_items, state_start, store_write, unpack


class DeadlineIndex:
    """Per partition, the keys by the time they are next due: a heap of ``(due, key)`` plus the due
    each key is indexed at. A key whose due moves later keeps its earlier entry: it is visited then,
    does nothing, and is indexed again at its new due; so each key has one live entry, and a tick
    touches the due keys plus entries left by keys deleted or re-indexed earlier (``touched``
    counts them all)."""

    def __init__(self) -> None:
        self.heaps: dict[int, list[tuple[float, bytes]]] = {}
        self.at: dict[int, dict[bytes, float]] = {}
        self.touched = 0

    def __len__(self) -> int:
        return sum(len(a) for a in self.at.values())

    def set(self, partition: int, key: bytes, due: float | None) -> None:
        if due is None:
            return  # an entry left in the heap is visited and dropped
        at = self.at.get(partition)
        if at is None:
            at = self.at[partition] = {}
            self.heaps[partition] = []
        cur = at.get(key)
        if cur is not None and cur <= due:
            return
        at[key] = due
        heapq.heappush(self.heaps[partition], (due, key))

    def extend(self, partition: int, items: list[tuple[float, bytes]]) -> None:
        """Index many ``(due, key)`` at once (the stored keys of a partition): one heapify instead of a
        push per key. A key indexed already keeps its entry (it was indexed from a newer state)."""
        at = self.at.get(partition)
        if at is None:
            at = self.at[partition] = {}
            self.heaps[partition] = []
        heap = self.heaps[partition]
        if at:
            items = [(due, key) for due, key in items if key not in at]
        at.update((key, due) for due, key in items)
        heap.extend(items)
        heapq.heapify(heap)

    def pop_due(self, partition: int, now: float) -> list[bytes]:
        """The keys of ``partition`` due at ``now``, taken out of the index (the caller indexes
        them again after their tick)."""
        heap = self.heaps.get(partition)
        if not heap:
            return []
        at = self.at[partition]
        out: list[bytes] = []
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            due, key = pop(heap)
            self.touched += 1
            if at.get(key) == due:
                del at[key]
                out.append(key)
        return out

    def discard(self, partition: int, key: bytes) -> None:
        at = self.at.get(partition)
        if at is not None:
            at.pop(key, None)

    def clear(self) -> None:
        self.heaps.clear()
        self.at.clear()


@dataclass
class _Dirty:
    partition: int
    tid: str | None  # the transaction the key's changelog record belongs to
    ops: list[tuple[Any, ...]] = field(default_factory=list)  # applied since the last snapshot
    from_scratch: bool = False  # deleted since the last snapshot: ops start from a new state


class StateCache:
    """The decoded states of ``stage``'s keys, backed by ``table``."""

    def __init__(self, stage: Any, table: Any) -> None:
        self.stage = stage
        self.table = table
        self.states: dict[bytes, Any] = {}  # a state, or None: deleted, not yet written
        self.dirty: dict[bytes, _Dirty] = {}
        # snapshot values whose transaction has not committed yet (None: a delete): the key's last
        # snapshot, which the store does not hold yet
        self.unwritten: dict[bytes, bytes | None] = {}
        self.index = DeadlineIndex()
        self._indexed: set[int] = set()  # partitions whose stored keys are in the index
        # key -> (partition, offset, index) of the last input applied to its state
        self.positions: dict[bytes, tuple[int, int, int]] = {}

    def __len__(self) -> int:
        return len(self.states)

    def _stored(self, kb: bytes) -> bytes | None:
        """The key's last snapshot: not yet written, else in the store."""
        unwritten = self.unwritten
        if unwritten and kb in unwritten:
            return unwritten[kb]
        return self.table.get(kb)  # type: ignore[no-any-return]

    def get(self, kb: bytes, key: str) -> Any:
        """The state of ``kb``: cached, else decoded from its last snapshot, else a new one."""
        st = self.states.get(kb)
        if st is None:
            raw = None if kb in self.states else self._stored(kb)
            st = self.stage.loads(self._unpack(kb, raw)) if raw is not None else self.stage.new_state(key)
            self.states[kb] = st
        return st

    def _unpack(self, kb: bytes, raw: bytes) -> bytes:
        partition, data = unpack(raw)
        pos = applied_of(raw)
        if pos is not None and kb not in self.positions:  # (a rebuilt key keeps its newer position)
            self.positions[kb] = (partition, *pos)
        return data

    def applied(self, kb: bytes, partition: int, offset: int, index: int) -> bool:
        """Whether the input at ``offset`` (``index`` in a batched record, else -1) of ``partition``
        is already in ``kb``'s state (call after :meth:`get`, which loads the position)."""
        pos = self.positions.get(kb)
        return pos is not None and pos[0] == partition and (offset, index) <= pos[1:]

    def peek(self, kb: bytes) -> Any | None:
        """The state of an existing key (cached, else decoded from its last snapshot), or None."""
        if kb in self.states:
            return self.states[kb]
        raw = self._stored(kb)
        if raw is None:
            return None
        st = self.states[kb] = self.stage.loads(self._unpack(kb, raw))
        return st

    def changed(
        self, kb: bytes, partition: int, tid: str | None, op: tuple[Any, ...], applied: tuple[int, int] | None = None
    ) -> None:
        """Record that ``op`` (``("event", event, now)`` or ``("tick", now, resumed_at)``) changed ``kb``;
        ``applied``: the ``(offset, index)`` of the input record it came from."""
        if applied is not None:
            self.positions[kb] = (partition, *applied)
        d = self.dirty.get(kb)
        if d is None:
            d = self.dirty[kb] = _Dirty(partition, tid)
        d.ops.append(op)
        st = self.states.get(kb)
        if st is not None:
            self.index.set(partition, kb, self.stage.due(st))

    def ticked(self, kb: bytes, partition: int, tid: str | None, now: float, resumed_at: float, emitted: bool) -> None:
        """A tick ran on ``kb``. One that emitted something must be written; one that did not is
        written with the key's next change (and kept for :meth:`recover` if the key is dirty)."""
        if emitted or kb in self.dirty:
            self.changed(kb, partition, tid, ("tick", now, resumed_at))
        else:
            self.reindex(kb, partition)

    def reindex(self, kb: bytes, partition: int) -> None:
        """Index ``kb`` at its state's due time (after a tick took it out)."""
        st = self.states.get(kb)
        if st is not None:
            self.index.set(partition, kb, self.stage.due(st))

    def due_keys(self, partition: int, now: float) -> list[bytes]:
        """The keys of ``partition`` due at ``now`` (indexing its stored keys first, once per
        consumer generation). Each is out of the index until :meth:`ticked`/:meth:`reindex`."""
        if partition not in self._indexed:
            self._index_stored(partition)
        return self.index.pop_due(partition, now)

    def _index_stored(self, partition: int) -> None:
        """Index the stored keys of ``partition`` (keys changed since are indexed already, by
        :meth:`changed`; a cached state is newer than the stored one and gives the due)."""
        self._indexed.add(partition)
        index, loads, due_of = self.index, self.stage.loads, self.stage.due
        states, unwritten = self.states, self.unwritten
        stored: list[tuple[float, bytes]] = []
        for kb, value in partition_items(self.table, partition):
            if kb in states or kb in unwritten:
                st = states.get(kb)
                if st is not None:
                    index.set(partition, kb, due_of(st))
                continue  # else deleted, or cached when it changed (indexed then)
            known, due = peek_due(value, state_start(value))
            if not known:  # a state of format v1-v3: decode it once
                due = due_of(loads(unpack(value)[1]))
            if due is not None:
                stored.append((due, kb))
        index.extend(partition, stored)

    def delete(self, kb: bytes, partition: int, tid: str | None) -> None:
        self.states[kb] = None
        self.positions.pop(kb, None)
        self.dirty[kb] = _Dirty(partition, tid, from_scratch=True)
        self.index.discard(partition, kb)

    def recover(self, kb: bytes, key: str) -> None:
        """Rebuild ``kb`` from its last snapshot plus the operations applied since (see module doc)."""
        self.states.pop(kb, None)
        d = self.dirty.get(kb)
        if d is None:
            return  # the table holds the state from before the failing operation
        if d.from_scratch:
            self.states[kb] = None
            if not d.ops:
                return
        st = self.get(kb, key)
        for op in d.ops:
            if op[0] == "event":
                self.stage.process(st, op[1], op[2])
            else:
                self.stage.tick(st, op[1], op[2])

    def snapshot(self) -> list[tuple[bytes, int, str | None, bytes | None]]:
        """``(key, partition, tid, value or None for a delete)`` of every dirty key; forgets the
        dirty set. The caller sends the values to the changelog and, once committed, hands them to
        :meth:`write`; until then they are the keys' last snapshot (:attr:`unwritten`)."""
        out: list[tuple[bytes, int, str | None, bytes | None]] = []
        unwritten = self.unwritten
        for kb, d in self.dirty.items():
            st = self.states.get(kb)
            if st is None:
                self.states.pop(kb, None)
                value = None
            else:
                pos = self.positions.get(kb)
                applied = pos[1:] if pos is not None and pos[0] == d.partition else None
                value = pack(d.partition, self.stage.dumps(st), applied)
            unwritten[kb] = value
            out.append((kb, d.partition, d.tid, value))
        self.dirty = {}
        return out

    def write(self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int | None) -> None:
        """Write committed snapshot values of ``partition`` into the store, with the changelog
        ``offset`` of the last of them, in one write batch (``tables.store_write``)."""
        store_write(self.table, partition, items, offset)
        unwritten = self.unwritten
        for kb, value in items:
            if kb in unwritten and unwritten[kb] is value:  # not snapshotted again since
                del unwritten[kb]

    def clear(self) -> None:
        """Forget everything (a rebalance): the store, recovered from the changelog, is the truth."""
        self.states.clear()
        self.positions.clear()
        self.dirty = {}
        self.unwritten = {}
        self.index.clear()
        self._indexed.clear()
