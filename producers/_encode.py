"""Hot-path event encoder: Avro single-object bytes, identical to ``tripwire.schemas.encode``.

``tripwire.schemas.encode`` writes events with the events *union* schema. Here each union branch
(one record type) gets a writer compiled once from the current ``.avsc`` (Python source generated per
field, like ``dataclasses`` generates ``__init__``), so encoding an event is a straight run of
``bytearray`` appends: header + branch index + fields. Input is a plain dict of Avro field values
(timestamps as epoch microseconds, enums as their symbols), so no pydantic model is built on the
agent's thread. A schema with a type the compiler does not know falls back to fastavro (parsed once
per branch). ``tests/unit/test_sdk_encode.py`` checks byte equality with the contract codec.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

import fastavro
from fastavro import schemaless_writer

from tripwire.schemas import EventBase, default_catalog
from tripwire.schemas.codec import MAGIC
from tripwire.schemas.events import EVENT_TYPES
from tripwire.schemas.events import EVENTS_SCHEMA as EVENTS_SCHEMA_NAME

_TABLE_BITS = 14
_pack_double = struct.Struct("<d").pack


def _varint(n: int) -> bytes:
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINT = [_varint(i) for i in range(1 << _TABLE_BITS)]


def zigzag(n: int) -> bytes:
    """Avro ``long`` encoding of ``n``."""
    z = (n << 1) ^ (n >> 63)
    return _VARINT[z] if z < 16384 else _varint(z)


class _Unsupported(Exception):
    pass


def _type_name(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, dict):
        return t["type"] if isinstance(t["type"], str) else "?"
    return "?"


def _compile(record: dict[str, Any], header: bytes, enums: dict[str, list[str]]) -> Callable[[dict[str, Any]], bytes]:
    """Generate ``write(d) -> bytes`` for one record schema (raises _Unsupported for unknown types)."""
    env: dict[str, Any] = {"_V": _VARINT, "_vi": _varint, "_pd": _pack_double, "_H": header}
    lines = ["def write(d):", "    o = bytearray(_H)"]

    def value(expr: str, t: Any, indent: str, name: str) -> None:
        kind = _type_name(t)
        if isinstance(t, str) and t in enums:
            kind = "enum"
            t = {"type": "enum", "name": t, "symbols": enums[t]}
        if kind in ("long", "int"):
            lines.append(f"{indent}z = ({expr} << 1) ^ ({expr} >> 63)")
            lines.append(f"{indent}o += _V[z] if z < 16384 else _vi(z)")
        elif kind == "string":
            lines.append(f"{indent}b = {expr}.encode()")
            lines.append(f"{indent}n = len(b) << 1")
            lines.append(f"{indent}o += _V[n] if n < 16384 else _vi(n)")
            lines.append(f"{indent}o += b")
        elif kind == "boolean":
            lines.append(f"{indent}o += b'\\x01' if {expr} else b'\\x00'")
        elif kind == "double":
            lines.append(f"{indent}o += _pd({expr})")
        elif kind == "enum":
            table = f"_E_{name}"
            env[table] = {s: _VARINT[i << 1] for i, s in enumerate(t["symbols"])}
            lines.append(f"{indent}o += {table}[{expr}]")
        else:
            raise _Unsupported(f"{name}: {t!r}")

    for i, f in enumerate(record["fields"]):
        t = f["type"]
        expr = f"v{i}"
        lines.append(f"    {expr} = d[{f['name']!r}]")
        if isinstance(t, dict) and t.get("type") == "enum":
            enums[t["name"]] = t["symbols"]
            enums[t["name"].rsplit(".", 1)[-1]] = t["symbols"]
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                raise _Unsupported(f"{f['name']}: union {t!r}")
            null_i = t.index("null")
            other = t[1 - null_i]
            if isinstance(other, dict) and other.get("type") == "enum":
                enums[other["name"]] = other["symbols"]
            lines.append(f"    if {expr} is None:")
            lines.append(f"        o += {_VARINT[null_i << 1]!r}")
            lines.append("    else:")
            lines.append(f"        o += {_VARINT[(1 - null_i) << 1]!r}")
            value(expr, other, "        ", f["name"])
        else:
            value(expr, t, "    ", f["name"])
    lines.append("    return bytes(o)")
    exec("\n".join(lines), env)  # noqa: S102 - source generated above from the shipped schema
    return env["write"]  # type: ignore[no-any-return]


class EventEncoder:
    """Encodes event field dicts per event type with the current events schema."""

    def __init__(self, compiled: bool = True) -> None:
        current = default_catalog().current(EVENTS_SCHEMA_NAME)
        named: dict[str, Any] = {}
        parsed = fastavro.parse_schema(current.schema, named_schemas=named)
        index = {branch["name"]: i for i, branch in enumerate(parsed)}
        self._writers: dict[type[EventBase], Callable[[dict[str, Any]], bytes]] = {}
        self.field_names: dict[type[EventBase], tuple[str, ...]] = {}
        self.compiled = compiled
        enums: dict[str, list[str]] = {}
        # named enums are defined once and referenced by name afterwards: compile in schema order
        order = sorted(EVENT_TYPES, key=lambda m: index[m.AVRO_NAME])
        for model in order:
            i = index[model.AVRO_NAME]
            header = MAGIC + current.fingerprint + zigzag(i)
            self.field_names[model] = tuple(f["name"] for f in parsed[i]["fields"])
            writer = None
            if compiled:
                try:
                    writer = _compile(current.schema[i], header, enums)
                except _Unsupported:
                    self.compiled = False
            if writer is None:
                branch = dict(parsed[i])
                branch["__fastavro_parsed"] = True
                branch["__named_schemas"] = named
                writer = _fastavro_writer(header, branch)
            self._writers[model] = writer

    def encode(self, model: type[EventBase], fields: dict[str, Any]) -> bytes:
        return self._writers[model](fields)


def _fastavro_writer(header: bytes, schema: dict[str, Any]) -> Callable[[dict[str, Any]], bytes]:
    def write(d: dict[str, Any]) -> bytes:
        buf = BytesIO()
        buf.write(header)
        schemaless_writer(buf, schema, d)
        return buf.getvalue()

    return write


__all__ = ["EventEncoder", "zigzag"]
