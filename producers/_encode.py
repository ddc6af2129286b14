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
from tripwire.schemas.events import EVENT_TYPES
from tripwire.schemas.events import EVENTS_SCHEMA as EVENTS_SCHEMA_NAME
from tripwire.schemas.wire import SINGLE_OBJECT_MAGIC as MAGIC
from tripwire.schemas.wire import VARINT_TABLE as _VARINT
from tripwire.schemas.wire import varint as _varint
from tripwire.schemas.wire import zigzag

_pack_double = struct.Struct("<d").pack




class _Unsupported(Exception):
    pass


def _type_name(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, dict):
        return t["type"] if isinstance(t["type"], str) else "?"
    return "?"


def _compile(
    fields: list[dict[str, Any]],
    header: bytes,
    enums: dict[str, list[str]],
    const_names: tuple[str, ...] = (),
) -> tuple[Callable[..., bytes], bool]:
    """Generate ``write(d, c) -> bytes`` for a list of record fields (raises _Unsupported for unknown types).

    If ``const_names`` appear contiguously and in that order, their encoding is not computed from ``d``
    but taken from ``c`` (pre-encoded once per run); the second result says whether that applies.
    """
    env: dict[str, Any] = {"_V": _VARINT, "_vi": _varint, "_pd": _pack_double, "_H": header}
    lines = ["def write(d, c=None):", "    o = bytearray(_H)"]
    names = [f["name"] for f in fields]
    use_const = False
    if const_names:
        try:
            at = names.index(const_names[0])
        except ValueError:
            at = -1
        use_const = at >= 0 and tuple(names[at : at + len(const_names)]) == const_names
    skip = set(const_names) if use_const else set()

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

    for i, f in enumerate(fields):
        t = f["type"]
        if isinstance(t, dict) and t.get("type") == "enum":
            enums[t["name"]] = t["symbols"]
            enums[t["name"].rsplit(".", 1)[-1]] = t["symbols"]
        if f["name"] in skip:
            if f["name"] == const_names[0]:
                lines.append("    o += c")
            continue
        expr = f"v{i}"
        lines.append(f"    {expr} = d[{f['name']!r}]")
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
    exec("\n".join(lines), env)  # source generated above from the shipped schema
    return env["write"], use_const


# Fields that are the same for every event of a run and sit together in every event record: encoded
# once per run (``EventEncoder.encode_const``) and spliced in.
RUN_CONSTANT_FIELDS = (
    "schema_version",
    "tenant",
    "agent_id",
    "agent_version",
    "workflow",
    "environment",
    "principal",
    "credential_fingerprint",
    "trace_id",
)


class EventEncoder:
    """Encodes event field dicts per event type with the current events schema.

    ``encode(model, fields, const, base)``: ``const`` is :meth:`encode_const` of the run's constant
    fields (``base``); writers that cannot splice it read those fields from ``base`` instead.
    """

    def __init__(self, compiled: bool = True, *, framing: bytes | None = None) -> None:
        """``framing``: the bytes written before the union branch index instead of the single-object header
        (the Confluent wire format's magic byte and schema id: see :mod:`tripwire.producers._framing`)."""
        current = default_catalog().current(EVENTS_SCHEMA_NAME)
        named: dict[str, Any] = {}
        parsed: list[dict[str, Any]] = fastavro.parse_schema(current.schema, named_schemas=named)  # type: ignore[assignment]
        index = {branch["name"]: i for i, branch in enumerate(parsed)}
        self._writers: dict[type[EventBase], Callable[..., bytes]] = {}
        self._spliced: dict[type[EventBase], Callable[..., bytes]] = {}
        self.field_names: dict[type[EventBase], tuple[str, ...]] = {}
        self.compiled = compiled
        enums: dict[str, list[str]] = {}
        const_fields: list[dict[str, Any]] | None = None
        # named enums are defined once and referenced by name afterwards: compile in schema order
        for model in sorted(EVENT_TYPES, key=lambda m: index[m.AVRO_NAME]):
            i = index[model.AVRO_NAME]
            header = (MAGIC + current.fingerprint if framing is None else framing) + zigzag(i)
            raw_fields = current.schema[i]["fields"]
            self.field_names[model] = tuple(f["name"] for f in raw_fields)
            writer: Callable[..., bytes] | None = None
            if compiled:
                try:
                    writer = _compile(raw_fields, header, enums)[0]
                    spliced, ok = _compile(raw_fields, header, enums, RUN_CONSTANT_FIELDS)
                    if ok:
                        self._spliced[model] = spliced
                        if const_fields is None:
                            const_fields = [f for f in raw_fields if f["name"] in RUN_CONSTANT_FIELDS]
                except _Unsupported:
                    self.compiled = False
                    writer = None
            if writer is None:
                branch = dict(parsed[i])
                branch["__fastavro_parsed"] = True
                branch["__named_schemas"] = named
                writer = _fastavro_writer(header, branch)
            self._writers[model] = writer
        if not self.compiled:
            self._spliced.clear()
        self._const_writer: Callable[..., bytes] | None = None
        if self._spliced and const_fields is not None and len(const_fields) == len(RUN_CONSTANT_FIELDS):
            self._const_writer = _compile(const_fields, b"", enums)[0]

    def encode_const(self, base: dict[str, Any]) -> bytes:
        """The run-constant fields, encoded once per run (empty if no writer can splice them)."""
        return self._const_writer(base) if self._const_writer is not None else b""

    def encode(
        self, model: type[EventBase], fields: dict[str, Any], const: bytes = b"", base: dict[str, Any] | None = None
    ) -> bytes:
        if const:
            spliced = self._spliced.get(model)
            if spliced is not None:
                return spliced(fields, const)
        return self._writers[model]({**base, **fields} if base is not None else fields)


def _fastavro_writer(header: bytes, schema: dict[str, Any]) -> Callable[..., bytes]:
    def write(d: dict[str, Any], c: bytes | None = None) -> bytes:
        buf = BytesIO()
        buf.write(header)
        schemaless_writer(buf, schema, d)
        return buf.getvalue()

    return write


__all__ = ["EventEncoder", "zigzag"]
