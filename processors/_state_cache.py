"""Decoded operator states of one stage, kept in memory next to its table.

The faust table holds each key's state as bytes (``tables.pack``); decoding it again for every
event (JSON parse + ``from_dict``) was a large share of a worker's per-event cost. The cache keeps
the decoded state objects of the keys this worker owns. Every change is still written through to
the table and its changelog by the runtime, in the transaction of the message that caused it, so
the table holds every change an output or an event caused (a crash loses nothing the changelog
has not got). A tick that changes a state without emitting anything is not written (as before);
the cached object keeps that change, as the in-process ``Pipeline`` does.

A key is evicted when a stage fails on it (the object may be half-updated; the table holds its
state from before the failing event) and when it expires. The whole cache is dropped when the
consumer generation changes (a rebalance): another worker may have written the keys of a
partition that comes back here, and the table, recovered from the changelog, is the truth.
"""

from __future__ import annotations

from typing import Any

from tripwire.processors.tables import unpack


class StateCache:
    """The decoded states of ``stage``'s keys, backed by ``table``."""

    def __init__(self, stage: Any, table: Any) -> None:
        self.stage = stage
        self.table = table
        self.states: dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self.states)

    def get(self, kb: bytes, key: str) -> Any:
        """The state of ``kb``: cached, else decoded from the table, else a new one."""
        st = self.states.get(kb)
        if st is None:
            raw = self.table.get(kb)
            st = self.stage.loads(unpack(raw)[1]) if raw is not None else self.stage.new_state(key)
            self.states[kb] = st
        return st

    def peek(self, kb: bytes) -> Any | None:
        """The state of an existing key (cached, else decoded from the table), or None."""
        st = self.states.get(kb)
        if st is None:
            raw = self.table.get(kb)
            if raw is None:
                return None
            st = self.states[kb] = self.stage.loads(unpack(raw)[1])
        return st

    def evict(self, kb: bytes) -> None:
        self.states.pop(kb, None)

    def clear(self) -> None:
        self.states.clear()
