"""Decoded operator states of one stage, kept in memory and written behind to its table.

The faust table holds each key's state as bytes (``tables.pack``). Decoding it for every event
(JSON parse + ``from_dict``) and encoding and sending it after every event were most of a
worker's per-event cost, so the cache keeps the decoded state objects of the keys this worker
owns and remembers which changed (dirty). The runtime takes a :meth:`StateCache.snapshot` of the
dirty keys right before each offset commit: one table write and one changelog record per changed
key, sent in the transaction that commits the offsets of the messages that changed it.

A stage that raises on an event may leave the key's object half-updated. The cache keeps the
operations applied to each dirty key since its last snapshot, so :meth:`StateCache.recover`
rebuilds the key from the table (its last snapshot) and replays them: the failing event is left
out and nothing before it is lost.

Each key also has its *applied position*: the ``(offset, index)`` of the last input record of its
partition whose effect the state holds, written with the state (``tables.pack``), so a snapshot
and the inputs it covers are one record. :meth:`StateCache.applied` tells the runtime that an
input is at or below it: replayed after its effect was committed (a transaction committed without
its offsets), it is skipped instead of applied twice.

The whole cache is dropped when the consumer generation changes (a rebalance): another worker may
have written the keys of a partition that comes back here, and the table, recovered from the
changelog, is the truth. Its dirty keys are dropped with it: their messages were not committed,
so they are read and applied again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tripwire.processors.tables import applied_of, pack, store_put, unpack


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
        # key -> (partition, offset, index) of the last input applied to its state
        self.positions: dict[bytes, tuple[int, int, int]] = {}

    def __len__(self) -> int:
        return len(self.states)

    def get(self, kb: bytes, key: str) -> Any:
        """The state of ``kb``: cached, else decoded from the table, else a new one."""
        st = self.states.get(kb)
        if st is None:
            raw = None if kb in self.states else self.table.get(kb)
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
        """The state of an existing key (cached, else decoded from the table), or None."""
        if kb in self.states:
            return self.states[kb]
        raw = self.table.get(kb)
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

    def ticked(self, kb: bytes, partition: int, tid: str | None, now: float, resumed_at: float, emitted: bool) -> None:
        """A tick ran on ``kb``. One that emitted something must be written; one that did not is
        written with the key's next change (and kept for :meth:`recover` if the key is dirty)."""
        if emitted or kb in self.dirty:
            self.changed(kb, partition, tid, ("tick", now, resumed_at))

    def delete(self, kb: bytes, partition: int, tid: str | None) -> None:
        self.states[kb] = None
        self.positions.pop(kb, None)
        self.dirty[kb] = _Dirty(partition, tid, from_scratch=True)

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
        """``(key, partition, tid, value or None for a delete)`` of every dirty key; writes the
        table and forgets the dirty set (the caller sends the values to the changelog)."""
        out: list[tuple[bytes, int, str | None, bytes | None]] = []
        data = self.table.data
        for kb, d in self.dirty.items():
            st = self.states.get(kb)
            if st is None:
                self.states.pop(kb, None)
                data.pop(kb, None)
                out.append((kb, d.partition, d.tid, None))
            else:
                pos = self.positions.get(kb)
                applied = pos[1:] if pos is not None and pos[0] == d.partition else None
                value = pack(d.partition, self.stage.dumps(st), applied)
                store_put(self.table, d.partition, kb, value)
                out.append((kb, d.partition, d.tid, value))
        self.dirty = {}
        return out

    def clear(self) -> None:
        self.states.clear()
        self.positions.clear()
        self.dirty = {}
