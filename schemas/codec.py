"""Avro single-object encoding of the contract models (the default framing).

Wire format (Avro spec, "Single object encoding"): ``C3 01`` + 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema + the Avro binary body. Events are written
with the events *union* schema so one reader decodes every event type from the events topic.

Decoding resolves the writer schema by fingerprint among every shipped version, then applies
Avro schema resolution to the current reader schema (skipped when writer == reader). The
models are validated on both sides by default; ``validate=False`` is the hot path for data a
trusted component built itself (see ``schemas/README.md``, "Hot path").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from io import BytesIO
from typing import Any, Protocol, TypeVar

from fastavro import schemaless_reader, schemaless_writer
from pydantic import BaseModel, TypeAdapter, ValidationError

from tripwire.schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from tripwire.schemas.errors import DecodeError, EncodeError
from tripwire.schemas.events import EVENT_TYPES
from tripwire.schemas.records import RECORD_TYPES

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
M = TypeVar("M", bound=BaseModel)

DEFAULT_MODELS: tuple[type[BaseModel], ...] = (*EVENT_TYPES, *RECORD_TYPES)


class Codec(Protocol):
    """What every framing implements (single-object here, Confluent in ``confluent.py``)."""

    def encode(self, record: BaseModel, validate: bool = True) -> bytes: ...

    def decode(self, data: bytes, validate: bool = True) -> BaseModel: ...


def _enum_fields(model: type[BaseModel]) -> tuple[tuple[str, dict[str, Enum]], ...]:
    """(field, value->member map) of every enum-typed field, for the no-validation decode path."""
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        args = getattr(ann, "__args__", None) or (ann,)
        for a in args:
            if isinstance(a, type) and issubclass(a, Enum):
                out.append((name, a._value2member_map_))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _WritePlan:
    header: bytes
    parsed: Any
    union_name: str | None  # fastavro tuple notation picks the union branch without trying each one


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    writer: SchemaVersion
    writer_parsed: Any
    reader_parsed: Any  # None when writer == reader (no resolution needed)
    model: type[BaseModel] | None  # for non-union schemas; unions map the record name


def model_avro_name(model: type[BaseModel]) -> str:
    return getattr(model, "AVRO_NAME", "") or ""


class AvroCodec:
    """Single-object codec over a :class:`SchemaCatalog` (default: the shipped schemas)."""

    def __init__(
        self, catalog: SchemaCatalog | None = None, models: Iterable[type[BaseModel]] = DEFAULT_MODELS
    ) -> None:
        self.catalog = catalog or default_catalog()
        self._models: dict[str, type[BaseModel]] = {}  # Avro full name -> model
        self._write: dict[type[BaseModel], _WritePlan] = {}
        self._schema_model: dict[str, type[BaseModel]] = {}  # non-union schema name -> model
        self._enums: dict[type[BaseModel], tuple[tuple[str, dict[str, Enum]], ...]] = {}
        for model in models:
            self._add_model(model)
        self._read: dict[bytes, _ReadPlan] = {}

    def _add_model(self, model: type[BaseModel]) -> None:
        name, schema_name = model_avro_name(model), getattr(model, "SCHEMA_NAME", "")
        if not name or not schema_name:
            raise EncodeError(f"{model.__name__} has no AVRO_NAME/SCHEMA_NAME; it is not a contract model")
        current = self.catalog.current(schema_name)
        is_union = isinstance(current.schema, list)
        self._models[name] = model
        if not is_union:
            self._schema_model[schema_name] = model
        self._write[model] = _WritePlan(MAGIC + current.fingerprint, current.parsed, name if is_union else None)
        self._enums[model] = _enum_fields(model)

    # -- encode ------------------------------------------------------------------------------

    def encode(self, record: BaseModel, validate: bool = True) -> bytes:
        """Encode one model. ``validate=False`` skips re-validating a model the caller built and trusts."""
        plan = self._write.get(type(record))
        if plan is None:
            raise EncodeError(f"{type(record).__name__} is not a contract model this codec knows")
        if validate:
            try:
                data = type(record).__pydantic_validator__.validate_python(record.__dict__).__dict__
            except ValidationError as e:
                raise EncodeError(f"invalid {type(record).__name__}: {e}") from e
        else:
            data = record.__dict__
        buf = BytesIO()
        buf.write(plan.header)
        try:
            schemaless_writer(buf, plan.parsed, data if plan.union_name is None else (plan.union_name, data))
        except Exception as e:  # fastavro raises ValueError/TypeError/KeyError/OverflowError...
            raise EncodeError(f"cannot write {type(record).__name__}: {type(e).__name__}: {e}") from e
        return buf.getvalue()

    # -- decode ------------------------------------------------------------------------------

    def _plan(self, fp: bytes) -> _ReadPlan:
        plan = self._read.get(fp)
        if plan is None:
            writer = self.catalog.by_fingerprint(fp)
            if writer is None:
                raise DecodeError("unknown_fingerprint", f"no shipped schema has fingerprint {fp.hex()}")
            reader = self.catalog.current(writer.name)
            plan = _ReadPlan(
                writer,
                writer.parsed,
                None if reader.fingerprint == writer.fingerprint else reader.parsed,
                self._schema_model.get(writer.name),
            )
            self._read[fp] = plan
        return plan

    def decode(self, data: bytes, validate: bool = True) -> BaseModel:
        """Decode single-object bytes into a model; every failure is a :class:`DecodeError`."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("not_bytes", f"expected bytes, got {type(data).__name__}")
        if len(data) < HEADER_LEN:
            raise DecodeError("truncated", f"{len(data)} bytes is shorter than the 10-byte single-object header")
        if data[:2] != MAGIC:
            raise DecodeError("bad_marker", f"expected C3 01, got {bytes(data[:2]).hex(' ').upper()}")
        plan = self._plan(bytes(data[2:HEADER_LEN]))
        buf = BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            value = schemaless_reader(buf, plan.writer_parsed, plan.reader_parsed, True)
        except Exception as e:  # fastavro raises EOFError, IndexError, UnicodeDecodeError, ValueError, ...
            raise _classify(e, plan.writer, data) from e
        if buf.tell() != len(data):
            raise DecodeError("trailing_bytes", f"{len(data) - buf.tell()} bytes after the record")
        if plan.model is not None:
            model = plan.model
            fields = value
        else:
            name, fields = value
            model = self._models.get(name)
            if model is None:
                raise DecodeError("unknown_record", f"no model for Avro record {name}")
        return self.build(model, fields, validate)

    def build(self, model: type[M], fields: dict[str, Any], validate: bool = True) -> M:
        """A model from decoded Avro fields: validated, or (``validate=False``) constructed with enum members."""
        if validate:
            try:
                return model.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
            except ValidationError as e:
                raise DecodeError("invalid", f"{model.__name__}: {e}") from e
        # fastavro has checked every type against the schema; only turn enum symbols into members.
        enums = self._enums.get(model)
        if enums is None:
            enums = self._enums[model] = _enum_fields(model)
        try:
            for name, members in enums:
                v = fields[name]
                if v is not None:
                    fields[name] = members[v]
        except KeyError as e:
            raise DecodeError("invalid", f"{model.__name__}: unknown value for an enum field: {e}") from e
        return model.model_construct(None, **fields)


def _zigzag_prefix(data: bytes | bytearray | memoryview, pos: int) -> int | None:
    """The zig-zag varint at ``pos`` (the union branch index of a body), None if it does not end."""
    shift = acc = 0
    for i in range(pos, min(len(data), pos + 10)):
        b = data[i]
        acc |= (b & 0x7F) << shift
        if not b & 0x80:
            return (acc >> 1) ^ -(acc & 1)
        shift += 7
    return None


def _classify(e: Exception, writer: SchemaVersion, data: bytes | bytearray | memoryview) -> DecodeError:
    """Turn whatever fastavro raised into a DecodeError with a stable reason (error path only)."""
    return _classify_body(e, writer.schema, f"{writer.name} v{writer.version}", data, HEADER_LEN)


def _classify_body(
    e: Exception, writer_schema: Any, where: str, data: bytes | bytearray | memoryview, body_at: int
) -> DecodeError:
    if isinstance(writer_schema, list):
        branch = _zigzag_prefix(data, body_at)
        if branch is not None and not 0 <= branch < len(writer_schema):
            return DecodeError("bad_union_branch", f"{where}: branch {branch} of a {len(writer_schema)}-branch union")
    msg = str(e)
    if isinstance(e, EOFError | StopIteration):
        if "Expected -" in msg:
            return DecodeError("malformed", f"{where}: negative length ({msg})")
        return DecodeError("truncated", f"{where}: body ends early")
    if isinstance(e, IndexError) and "string index" in msg:  # the varint reader ran off the end
        return DecodeError("truncated", f"{where}: body ends early")
    if isinstance(e, UnicodeDecodeError):
        return DecodeError("malformed", f"{where}: a string is not valid UTF-8")
    if isinstance(e, IndexError):
        return DecodeError("malformed", f"{where}: enum or union index out of range")
    return DecodeError("malformed", f"{where}: {type(e).__name__}: {msg[:200]}")


_default: AvroCodec | None = None


def default_codec() -> AvroCodec:
    global _default
    if _default is None:
        _default = AvroCodec()
    return _default


def encode(record: BaseModel, validate: bool = True) -> bytes:
    """Single-object encode with the shipped schemas (see :meth:`AvroCodec.encode`)."""
    return default_codec().encode(record, validate)


def decode(data: bytes, validate: bool = True) -> BaseModel:
    """Single-object decode with every shipped schema version (see :meth:`AvroCodec.decode`)."""
    return default_codec().decode(data, validate)


def to_record(model: BaseModel) -> dict[str, Any]:
    """The model as a plain dict with Avro field names (enums stay ``StrEnum``, which are ``str``)."""
    return dict(model.__dict__)


_adapters: dict[Any, TypeAdapter[Any]] = {}


def from_record(type_: Any, record: dict[str, Any]) -> Any:
    """Validate a plain dict into ``type_`` (a model class, or a union such as ``Event``)."""
    if isinstance(type_, type) and issubclass(type_, BaseModel):
        return type_.model_validate(record)
    adapter = _adapters.get(type_)
    if adapter is None:
        adapter = _adapters[type_] = TypeAdapter(type_)
    return adapter.validate_python(record)
