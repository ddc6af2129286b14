"""Event-id dedup of the raw event tables: a row whose ``event_id`` is already stored is not inserted again.

The offset marks of ``batching.py`` make a replay of the *same* Kafka records exact. They cannot see
the same event produced twice at *different* offsets: an OTLP exporter retrying after a receiver
restart, a replayed export, an SDK spool re-sent after an ambiguous ack. Events carry stable ids
(the OTLP receiver derives them from (trace_id, span_id)), so before a batch of ``model_calls``,
``tool_calls`` or ``run_events`` is inserted the sink drops the rows whose event_id

- occurs earlier in the same batch, or
- was inserted by this sink recently (an in-memory set, bounded to ``memory`` ids per table), or
- is in the table: one query per batch, ``event_id IN (...)`` within the batch's own ``ts_start`` range.
  A duplicate is the same event, so it has the same ``ts_start``: the bound never misses one, and it
  keeps the lookup to the parts and granules of that time range (the ``ts_start_mm`` minmax skip index of
  migration 0007) instead of the whole table. A batch whose times cannot be read
  (an Avro record the skipper does not know) is looked up without the bound.

A staged batch (validating, ClickHouse-decoded: ``sinks/_avro_checks.py``) applies the same rules in
SQL over its staging table (``StagePlan.review_sql``; the table alone, no in-memory set), so its ids
never cross to Python; this guard serves the batches read in Python.

Plain SQL on the table itself, so chdb and a ClickHouse server behave the same, the rollups fed by
the tables never see the duplicate (no ReplacingMergeTree merge to wait for, no ``FINAL`` in reads).
It assumes one writer per event at a time: the events of a run share a Kafka key, hence a partition,
hence one sink consumer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tripwire.schemas.wire import read_long
from tripwire.sinks.rows import TABLES
from tripwire.sinks.store import Store

#: the raw event tables and the position of ``event_id`` in their rows
EVENT_ID_COLUMN: dict[str, int] = {
    name: spec.columns.index("event_id") for name, spec in TABLES.items() if "event_id" in spec.columns
}
#: ... and of ``ts_start``
TS_START_COLUMN: dict[str, int] = {name: TABLES[name].columns.index("ts_start") for name in EVENT_ID_COLUMN}

_LOOKUP_CHUNK = 50_000  # ids per query (one per sink batch of the default 50k rows)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
T = TypeVar("T")


class EventIdGuard:
    """Which event ids of a batch are already stored (see the module docstring)."""

    def __init__(self, store: Store, memory: int = 200_000) -> None:
        self.store = store
        self.memory = memory
        self._recent: dict[str, OrderedDict[str, None]] = {t: OrderedDict() for t in EVENT_ID_COLUMN}

    def keep(self, table: str, items: list[T], ids: list[str | None], ts_us: list[int | None]) -> list[T]:
        """The items to insert: ``items[k]`` (event id ``ids[k]``, ``ts_start`` ``ts_us[k]`` in epoch
        microseconds) unless its id occurred earlier in the list or is already stored (an item whose id
        is None, unreadable, is kept). Raises ``StoreError`` when the table cannot be asked."""
        recent = self._recent[table]
        ask = sorted({i for i in ids if i is not None and i not in recent})
        stored: set[str] = set()
        if ask:
            known = [t for t, i in zip(ts_us, ids, strict=True) if i is not None]
            bounded = all(t is not None for t in known)
            # one String parameter split in the query: ClickHouse parses a 50k-element Array parameter
            # ~4x slower (measured on chdb); a split inside an id only fails to match, never drops a row
            where = "event_id IN (SELECT arrayJoin(splitByChar(',', {ids:String})))"
            params: dict[str, Any] = {}
            if bounded:
                where += (
                    " AND ts_start >= fromUnixTimestamp64Micro({lo:Int64}, 'UTC')"
                    " AND ts_start <= fromUnixTimestamp64Micro({hi:Int64}, 'UTC')"
                )
                params = {"lo": min(known), "hi": max(known)}  # type: ignore[type-var]
            for k in range(0, len(ask), _LOOKUP_CHUNK):
                params["ids"] = ",".join(ask[k : k + _LOOKUP_CHUNK])
                res = self.store.query(f"SELECT DISTINCT event_id FROM {table} WHERE {where}", params)
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


def micros(ts: datetime) -> int:
    """Epoch microseconds of a row's ``ts_start`` (naive = UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _US


def skip_plan(record_schema: dict[str, Any]) -> tuple[str, ...] | None:
    """How to read ``event_id`` and ``ts_start`` of a writer record: the kinds of the fields before
    ``ts_start`` (``s`` string, ``l`` int/long, ``ns``/``nl`` their nullable unions), or None when a field
    before it is of another type (or the record does not start with ``event_id``)."""
    fields = record_schema.get("fields", [])
    if not fields or fields[0].get("name") != "event_id" or _kind(fields[0]["type"]) != "s":
        return None
    kinds: list[str] = []
    for f in fields:
        k = _kind(f["type"])
        if f["name"] == "ts_start":
            return tuple(kinds) if k == "l" else None
        if k is None:
            return None
        kinds.append(k)
    return None


def _kind(t: Any) -> str | None:
    if isinstance(t, dict):
        t = t.get("type")
    if t == "string":
        return "s"
    if t in ("int", "long"):
        return "l"
    if isinstance(t, list) and len(t) == 2 and t[0] == "null":
        inner = _kind(t[1])
        return None if inner is None or len(inner) > 1 else "n" + inner
    return None


def avro_event_id_ts(value: bytes | None, start: int, plan: tuple[str, ...] | None) -> tuple[str | None, int | None]:
    """(``event_id``, ``ts_start`` in epoch microseconds) of a single-object event whose record body
    starts at ``start``; None for what cannot be read (``plan`` from :func:`skip_plan`)."""
    if value is None or plan is None:
        return None, None
    pos = start
    eid: str | None = None
    for n, kind in enumerate(plan):
        if kind[0] == "n":  # a nullable union: the branch index, then the value unless null
            head = read_long(value, pos)
            if head is None:
                return eid, None
            branch, pos = head
            if branch == 0:
                continue
            kind = kind[1]
        head = read_long(value, pos)
        if head is None:
            return eid, None
        v, pos = head
        if kind == "s":
            if v < 0 or pos + v > len(value):
                return eid, None
            if n == 0:
                try:
                    eid = value[pos : pos + v].decode()
                except UnicodeDecodeError:
                    return None, None
            pos += v
    ts = read_long(value, pos)
    return eid, None if ts is None else ts[0]
