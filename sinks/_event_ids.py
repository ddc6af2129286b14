"""Event-id dedup of the raw event tables: a row whose ``event_id`` is already stored is not inserted again.

The offset marks of ``batching.py`` make a replay of the *same* Kafka records exact. They cannot see
the same event produced twice at *different* offsets: an OTLP exporter retrying after a receiver
restart, a replayed export, an SDK spool re-sent after an ambiguous ack. Events carry stable ids
(the OTLP receiver derives them from (trace_id, span_id)), so before a batch of ``model_calls``,
``tool_calls`` or ``run_events`` is inserted the sink drops the rows whose event_id

- occurs earlier in the same batch, or
- was inserted by this sink recently (an in-memory set, bounded to ``memory`` ids per table), or
- is in the table (one ``event_id IN (...)`` query per batch, helped by the ``event_id_bf``
  bloom-filter skip index of migration 0007; the table's TTL bounds how far back it reaches).

Plain SQL on the table itself, so chdb and a ClickHouse server behave the same, the rollups fed by
the tables never see the duplicate (no ReplacingMergeTree merge to wait for, no ``FINAL`` in reads).
It assumes one writer per event at a time: the events of a run share a Kafka key, hence a partition,
hence one sink consumer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TypeVar

from tripwire.schemas.wire import read_long
from tripwire.sinks.rows import TABLES
from tripwire.sinks.store import Store

#: the raw event tables and the position of ``event_id`` in their rows
EVENT_ID_COLUMN: dict[str, int] = {
    name: spec.columns.index("event_id") for name, spec in TABLES.items() if "event_id" in spec.columns
}

_LOOKUP_CHUNK = 5_000  # ids per IN list
T = TypeVar("T")


class EventIdGuard:
    """Which event ids of a batch are already stored (see the module docstring)."""

    def __init__(self, store: Store, memory: int = 200_000) -> None:
        self.store = store
        self.memory = memory
        self._recent: dict[str, OrderedDict[str, None]] = {t: OrderedDict() for t in EVENT_ID_COLUMN}

    def keep(self, table: str, items: list[T], ids: list[str | None]) -> list[T]:
        """The items to insert: ``items[k]`` (event id ``ids[k]``) unless its id occurred earlier in
        the list or is already stored (an item whose id is None, unreadable, is kept). Raises
        ``StoreError`` when the table cannot be asked."""
        recent = self._recent[table]
        ask = sorted({i for i in ids if i is not None and i not in recent})
        stored: set[str] = set()
        for k in range(0, len(ask), _LOOKUP_CHUNK):
            chunk = ask[k : k + _LOOKUP_CHUNK]
            res = self.store.query(
                f"SELECT DISTINCT event_id FROM {table} WHERE event_id IN {{ids:Array(String)}}", {"ids": chunk}
            )
            stored.update(str(r[0]) for r in res.rows)
        out: list[T] = []
        seen: set[str] = set()
        for item, i in zip(items, ids, strict=True):
            if i is None:
                out.append(item)
                continue
            if i in seen or i in stored or i in recent:
                continue
            seen.add(i)
            out.append(item)
        return out

    def stored(self, table: str, ids: Iterable[str | None]) -> None:
        """Remember ids just inserted into ``table`` (the oldest are forgotten past ``memory``)."""
        recent = self._recent[table]
        for i in ids:
            if i is None:
                continue
            recent[i] = None
            recent.move_to_end(i)
        while len(recent) > self.memory:
            recent.popitem(last=False)


def avro_event_id(value: bytes | None, start: int) -> str | None:
    """The ``event_id`` of a single-object event whose record body starts at ``start`` (every branch
    of the events union begins with it), or None when it cannot be read."""
    if value is None:
        return None
    head = read_long(value, start)
    if head is None:
        return None
    n, pos = head
    if n < 0 or pos + n > len(value):
        return None
    try:
        return value[pos : pos + n].decode()
    except UnicodeDecodeError:
        return None
