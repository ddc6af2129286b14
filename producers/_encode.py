"""Hot-path event encoder: Avro single-object bytes, identical to ``tripwire.schemas.encode``.

``tripwire.schemas.encode`` writes events with the events *union* schema; fastavro cannot mark a
union (a JSON list) as already parsed, so it re-parses the whole union on every call. Here each
branch is parsed once, against the union's named types, and the bytes are written as the union
would be: header + branch index (zig-zag varint) + record body. Input is a plain dict of Avro field
values (timestamps as epoch microseconds, enums as their symbols), so no model is built on the agent's
thread. ``tests/unit/test_sdk_encode.py`` checks byte equality with the contract codec for every type.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import fastavro
from fastavro import schemaless_writer

from tripwire.schemas import EventBase, default_catalog
from tripwire.schemas.codec import MAGIC
from tripwire.schemas.events import EVENT_TYPES
from tripwire.schemas.events import EVENTS_SCHEMA as EVENTS_SCHEMA_NAME


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class EventEncoder:
    """Encodes event field dicts per event type with the current events schema."""

    def __init__(self) -> None:
        current = default_catalog().current(EVENTS_SCHEMA_NAME)
        named: dict[str, Any] = {}
        parsed = fastavro.parse_schema(current.schema, named_schemas=named)
        index = {branch["name"]: i for i, branch in enumerate(parsed)}
        self._plans: dict[type[EventBase], tuple[bytes, dict[str, Any]]] = {}
        self.field_names: dict[type[EventBase], tuple[str, ...]] = {}
        for model in EVENT_TYPES:
            i = index[model.AVRO_NAME]
            branch = dict(parsed[i])
            branch["__fastavro_parsed"] = True
            branch["__named_schemas"] = named
            self._plans[model] = (MAGIC + current.fingerprint + _zigzag(i), branch)
            self.field_names[model] = tuple(f["name"] for f in branch["fields"])

    def encode(self, model: type[EventBase], fields: dict[str, Any]) -> bytes:
        header, schema = self._plans[model]
        buf = BytesIO()
        buf.write(header)
        schemaless_writer(buf, schema, fields)
        return buf.getvalue()


__all__ = ["EventEncoder"]
