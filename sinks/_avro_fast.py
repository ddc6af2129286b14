"""ClickHouse-side Avro decoding of the events topic (the sink's trusted fast path).

Python decodes Avro at ~30 µs per event (fastavro), ClickHouse at a fraction of that. In
trusted mode (``validate_events=False``) the sink does not decode event values: it slices the
Avro body out of each single-object message, appends the source position (and, for
``run_events``, the event type) encoded as extra Avro fields, wraps the bodies of one writer
record into an Avro object container, and lets ClickHouse's ``Avro`` input format decode and
type-check them. Anything this path cannot take (unknown fingerprint, a batch ClickHouse
rejects) goes through the Python decoder, which dead-letters what is bad.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tripwire.schemas import default_catalog
from tripwire.schemas.wire import avro_string, zigzag
from tripwire.sinks.rows import SOURCE_COLUMNS, TABLES

_EVENT_TABLES = {
    "tripwire.events.ModelCall": ("model_calls", None),
    "tripwire.events.ToolCall": ("tool_calls", None),
    "tripwire.events.RunStarted": ("run_events", "run_started"),
    "tripwire.events.ApprovalDecision": ("run_events", "approval_decision"),
    "tripwire.events.RunFinished": ("run_events", "run_finished"),
}

RECEIVED = "src_received_us"  # appended when validating: the Kafka record timestamp (the limits' receipt time)


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if not k.startswith("__") and k != "doc"}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


@dataclass(frozen=True, slots=True)
class AvroBranch:
    """How one writer record of the events union becomes rows of one table."""

    name: str
    table: str
    columns: tuple[str, ...]  # insert columns: record fields the table has, then event_type?, then source columns
    schema_json: bytes  # the writer record schema extended with the appended fields
    suffix: bytes  # encoded constant fields appended to every body (event_type)
    sync: bytes  # deterministic container sync marker (same batch -> same bytes)
    received: bool = False  # bodies end with RECEIVED (Kafka timestamp, µs) after src_offset

    def body(self, value: bytes, start: int, topic_enc: bytes, partition: int, offset: int) -> bytes:
        """One record: the writer's body, then event_type?, src_topic, src_partition, src_offset."""
        return b"".join((value[start:], self.suffix, topic_enc, zigzag(partition), zigzag(offset)))

    def container(self, bodies: Sequence[bytes | memoryview], count: int | None = None) -> bytes:
        """An Avro object container file with one uncompressed block (``bodies`` may be the pieces
        of ``count`` records)."""
        meta = b"".join(
            (
                zigzag(2),
                avro_string("avro.schema"),
                zigzag(len(self.schema_json)),
                self.schema_json,
                avro_string("avro.codec"),
                avro_string("null"),
                zigzag(0),
            )
        )
        blob = b"".join(bodies)
        n = len(bodies) if count is None else count
        return b"".join((b"Obj\x01", meta, self.sync, zigzag(n), zigzag(len(blob)), blob, self.sync))


class AvroPlans:
    """Writer branches of the events schemas by (fingerprint, branch index), built on first use."""

    def __init__(self, *, received: bool = False) -> None:
        self._catalog = default_catalog()
        self._received = received  # append RECEIVED after the source position (the validating path)
        self._cache: dict[tuple[bytes, int], AvroBranch | None] = {}

    def branch(self, fp: bytes, index: int) -> AvroBranch | None:
        key = (fp, index)
        if key in self._cache:
            return self._cache[key]
        self._cache[key] = plan = self._build(fp, index)
        return plan

    def _build(self, fp: bytes, index: int) -> AvroBranch | None:
        from fastavro.schema import expand_schema

        sv = self._catalog.by_fingerprint(fp)
        if sv is None or sv.name != "events" or not isinstance(sv.schema, list) or not 0 <= index < len(sv.schema):
            return None
        record = _clean(expand_schema(sv.schema)[index])
        name = record["name"] if "." in record["name"] else f"{record.get('namespace', '')}.{record['name']}"
        target = _EVENT_TABLES.get(name)
        if target is None:
            return None
        table, event_type = target
        spec = TABLES[table]
        fields = [f["name"] for f in record["fields"]]
        extra: list[dict[str, Any]] = []
        suffix = b""
        columns = [f for f in fields if f in spec.columns]
        if event_type is not None:
            extra.append({"name": "event_type", "type": "string"})
            suffix = avro_string(event_type)
            columns.append("event_type")
        extra += [
            {"name": "src_topic", "type": "string"},
            {"name": "src_partition", "type": "int"},
            {"name": "src_offset", "type": "long"},
        ]
        if self._received:
            extra.append({"name": RECEIVED, "type": "long"})
        record["fields"] = record["fields"] + extra
        schema_json = json.dumps(record, separators=(",", ":")).encode()
        return AvroBranch(
            name=name,
            table=table,
            columns=(*columns, *SOURCE_COLUMNS),
            schema_json=schema_json,
            suffix=suffix,
            sync=hashlib.sha256(schema_json).digest()[:16],
            received=self._received,
        )
