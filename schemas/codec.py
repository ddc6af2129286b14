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
from tripwire.schemas.errors import DecodeError, EncodeError, describe_validation
from tripwire.schemas.events import EVENT_TYPES
from tripwire.schemas.fieldchecks import FieldChecks, field_checks
from tripwire.schemas.records import RECORD_TYPES
from tripwire.schemas.wire import HEADER_LEN, read_long, zigzag
from tripwire.schemas.wire import SINGLE_OBJECT_MAGIC as MAGIC

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
    prefix: bytes  # single-object header, plus the union branch index for events
    parsed: Any  # the parsed record schema (for a union: the branch), reused by every call


@dataclass(frozen=True, slots=True)
class _Branch:
    writer_parsed: Any
    reader_parsed: Any  # None when writer == reader (no resolution needed)
    model: type[BaseModel] | None  # None: the reader has no model for this record
    name: str
    trusted: Any = None  # fields -> model without re-validation (see _trusted_builder)
    checked: Any = None  # fields -> validated model without pydantic (see _checked_builder); None: use pydantic


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    writer: SchemaVersion
    branches: tuple[_Branch, ...]  # one per union branch; a single entry for a record schema
    union: bool


def model_avro_name(model: type[BaseModel]) -> str:
    return getattr(model, "AVRO_NAME", "") or ""


_setattr = object.__setattr__
_BYTES = (bytes, bytearray, memoryview)


def _construct(model: type[M], fields: dict[str, Any], fields_set: frozenset[str] | set[str]) -> M:
    """``model_construct`` without its per-field default handling: fastavro returns every field."""
    m = object.__new__(model)
    _setattr(m, "__dict__", fields)
    _setattr(m, "__pydantic_fields_set__", set(fields_set))
    _setattr(m, "__pydantic_extra__", None)
    _setattr(m, "__pydantic_private__", None)
    return m


def _trusted_builder(model: type[M], enums: tuple[tuple[str, dict[str, Enum]], ...]) -> Any:
    """``fields -> model`` for the trusted decode path: fastavro has checked every type against the
    schema, so only enum symbols become members and the model is built without re-validation."""
    fields_set = set(model.model_fields)
    new = object.__new__

    def build(fields: dict[str, Any]) -> M:
        for name, members in enums:
            v = fields[name]
            if v is not None:
                try:
                    fields[name] = members[v]
                except KeyError as e:
                    raise DecodeError("invalid", f"{model.__name__}.{name}: unknown symbol {v!r}") from e
        m = new(model)
        _setattr(m, "__dict__", fields)
        _setattr(m, "__pydantic_fields_set__", fields_set.copy())
        _setattr(m, "__pydantic_extra__", None)
        _setattr(m, "__pydantic_private__", None)
        return m  # type: ignore[no-any-return]

    return build


def _invalid(model: type[BaseModel], fields: dict[str, Any], why: str) -> DecodeError:
    """The DecodeError for a record :mod:`fieldchecks` rejected (error path only): pydantic's full
    description (every broken field, never the values) when pydantic agrees, else the fast reason."""
    try:
        model.__pydantic_validator__.validate_python(fields)
    except ValidationError as e:
        return DecodeError("invalid", describe_validation(model.__name__, e.errors(include_input=False)))
    return DecodeError("invalid", f"{model.__name__}: {why}")


def _checked_builder(model: type[M], checks: FieldChecks, trusted: Any) -> Any:
    """``fields -> model`` for the validated decode path without pydantic: the model's rules in plain
    Python on the record dict (fastavro has checked the Avro types), then the trusted construction."""
    problem = checks.problem

    def build(fields: dict[str, Any]) -> M:
        why = problem(fields)
        if why is not None:
            raise _invalid(model, fields, why)
        return trusted(fields)  # type: ignore[no-any-return]

    return build


class AvroCodec:
    """Single-object codec over a :class:`SchemaCatalog` (default: the shipped schemas).

    Parsed schemas and per-fingerprint read plans are built once and reused; encode passes the
    model's own ``__dict__`` to fastavro (no copy), decode hands fastavro's dict to the model.
    """

    def __init__(
        self, catalog: SchemaCatalog | None = None, models: Iterable[type[BaseModel]] = DEFAULT_MODELS
    ) -> None:
        self.catalog = catalog or default_catalog()
        self._models: dict[str, type[BaseModel]] = {}  # Avro full name -> model
        self._write: dict[type[BaseModel], _WritePlan] = {}
        self._enums: dict[type[BaseModel], tuple[tuple[str, dict[str, Enum]], ...]] = {}
        self._field_sets: dict[type[BaseModel], set[str]] = {}
        self._checks: dict[type[BaseModel], Any] = {}  # FieldChecks, or None: pydantic validates
        for model in models:
            self._add_model(model)
        self._read: dict[bytes, _ReadPlan] = {}

    def _add_model(self, model: type[BaseModel]) -> None:
        name, schema_name = model_avro_name(model), getattr(model, "SCHEMA_NAME", "")
        if not name or not schema_name:
            raise EncodeError(f"{model.__name__} has no AVRO_NAME/SCHEMA_NAME; it is not a contract model")
        current = self.catalog.current(schema_name)
        header = MAGIC + current.fingerprint
        if current.branches:
            if name not in current.branch_names:
                raise EncodeError(f"{model.__name__}: {current.path} has no record {name}")
            i = current.branch_names.index(name)
            plan = _WritePlan(header + zigzag(i), current.branches[i])
        else:
            plan = _WritePlan(header, current.parsed)
        self._models[name] = model
        self._write[model] = plan
        self._enums[model] = _enum_fields(model)
        self._field_sets[model] = set(model.model_fields)
        self._checks[model] = field_checks(model)

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
                raise EncodeError(
                    "invalid " + describe_validation(type(record).__name__, e.errors(include_input=False))
                ) from e
        else:
            data = record.__dict__
        buf = BytesIO()
        buf.write(plan.prefix)
        try:
            schemaless_writer(buf, plan.parsed, data)
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
            same = reader.fingerprint == writer.fingerprint
            if writer.branches:
                # Avro resolution of a union of records: each writer branch is read by the reader
                # branch of the same full name (None when the reader dropped that record).
                branches = []
                for wname, wparsed in zip(writer.branch_names, writer.branches, strict=True):
                    if same:
                        rparsed = None
                    elif wname in reader.branch_names:
                        rparsed = reader.branches[reader.branch_names.index(wname)]
                    else:
                        rparsed = _MISSING
                    branches.append(self._branch(wparsed, rparsed, wname))
                plan = _ReadPlan(writer, tuple(branches), True)
            else:
                rname = reader.schema.get("namespace", "") + "." + reader.schema["name"]
                plan = _ReadPlan(writer, (self._branch(writer.parsed, None if same else reader.parsed, rname),), False)
            self._read[fp] = plan
        return plan

    def _branch(self, wparsed: Any, rparsed: Any, name: str) -> _Branch:
        model = self._models.get(name)
        if model is None:
            return _Branch(wparsed, rparsed, None, name)
        trusted = _trusted_builder(model, self._enums[model])
        checks = self._checks[model]
        checked = _checked_builder(model, checks, trusted) if checks is not None else None
        return _Branch(wparsed, rparsed, model, name, trusted, checked)

    def decode(self, data: bytes, validate: bool = True) -> BaseModel:
        """Decode single-object bytes into a model; every failure is a :class:`DecodeError`."""
        if not isinstance(data, _BYTES):
            raise DecodeError("not_bytes", f"expected bytes, got {type(data).__name__}")
        size = len(data)
        if size < HEADER_LEN:
            raise DecodeError("truncated", f"{size} bytes is shorter than the 10-byte single-object header")
        if data[0] != 0xC3 or data[1] != 0x01:
            raise DecodeError("bad_marker", f"expected C3 01, got {bytes(data[:2]).hex(' ').upper()}")
        fp = data[2:HEADER_LEN] if type(data) is bytes else bytes(data[2:HEADER_LEN])
        plan = self._read.get(fp) or self._plan(fp)
        pos = HEADER_LEN
        if plan.union:
            if size == HEADER_LEN:
                raise DecodeError("truncated", "no body after the header")
            b = data[HEADER_LEN]
            if b < 0x80:  # one-byte zig-zag varint: every realistic branch index
                index, pos = (b >> 1) ^ -(b & 1), HEADER_LEN + 1
            else:
                index, pos = _long_at(data, HEADER_LEN)
            if not 0 <= index < len(plan.branches):
                where = f"{plan.writer.name} v{plan.writer.version}"
                raise DecodeError("bad_union_branch", f"{where}: branch {index} of a {len(plan.branches)}-branch union")
            branch = plan.branches[index]
        else:
            branch = plan.branches[0]
        if branch.reader_parsed is _MISSING:
            raise DecodeError("incompatible", f"the current {plan.writer.name} schema has no record {branch.name}")
        buf = BytesIO(data)
        buf.seek(pos)
        try:
            fields: dict[str, Any] = schemaless_reader(  # type: ignore[assignment]  # a record: always a dict
                buf, branch.writer_parsed, branch.reader_parsed
            )
        except Exception as e:  # fastavro raises EOFError, IndexError, UnicodeDecodeError, ValueError, ...
            raise _classify(e, plan.writer, data) from e
        if buf.tell() != size:
            raise DecodeError("trailing_bytes", f"{size - buf.tell()} bytes after the record")
        model = branch.model
        if model is None:
            raise DecodeError("unknown_record", f"no model for Avro record {branch.name}")
        if validate:
            if branch.checked is not None:  # the models' rules without building a pydantic model
                return branch.checked(fields)  # type: ignore[no-any-return]
            try:
                return model.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
            except ValidationError as e:
                raise DecodeError("invalid", describe_validation(model.__name__, e.errors(include_input=False))) from e
        return branch.trusted(fields)  # type: ignore[no-any-return]

    def build(self, model: type[M], fields: dict[str, Any], validate: bool = True) -> M:
        """A model from decoded Avro fields: validated, or (``validate=False``) constructed with enum members."""
        if validate:
            checks = self._checks.get(model, _MISSING)
            if checks is _MISSING:  # a model only used through build() (e.g. by ConfluentCodec)
                checks = self._checks[model] = field_checks(model)
            if checks is not None:
                why = checks.problem(fields)  # type: ignore[union-attr]
                if why is not None:
                    raise _invalid(model, fields, why)
                return self.build(model, fields, validate=False)
            try:
                return model.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
            except ValidationError as e:
                raise DecodeError("invalid", describe_validation(model.__name__, e.errors(include_input=False))) from e
        # fastavro has checked every type against the schema; only turn enum symbols into members.
        enums = self._enums.get(model)
        if enums is None:  # a model only used through build() (e.g. by ConfluentCodec)
            enums = self._enums[model] = _enum_fields(model)
            self._field_sets[model] = set(model.model_fields)
        try:
            for name, members in enums:
                v = fields[name]
                if v is not None:
                    fields[name] = members[v]
        except KeyError as e:
            raise DecodeError("invalid", f"{model.__name__}: unknown value for an enum field: {e}") from e
        return _construct(model, fields, self._field_sets[model])


_MISSING = object()


def _long_at(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(zig-zag varint at ``pos``, position after it); raises DecodeError if it does not end."""
    found = read_long(data, pos)
    if found is None:
        raise DecodeError("truncated", "the union branch index does not end")
    return found


def _classify(e: Exception, writer: SchemaVersion, data: bytes | bytearray | memoryview) -> DecodeError:
    """Turn whatever fastavro raised into a DecodeError with a stable reason (error path only)."""
    return _classify_body(e, writer.schema, f"{writer.name} v{writer.version}", data, HEADER_LEN)


def _classify_body(
    e: Exception, writer_schema: Any, where: str, data: bytes | bytearray | memoryview, body_at: int
) -> DecodeError:
    if isinstance(writer_schema, list):
        try:
            branch: int | None = _long_at(data, body_at)[0]
        except DecodeError:
            branch = None
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
    return (_default or default_codec()).encode(record, validate)


def decode(data: bytes, validate: bool = True) -> BaseModel:
    """Single-object decode with every shipped schema version (see :meth:`AvroCodec.decode`)."""
    return (_default or default_codec()).decode(data, validate)


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
