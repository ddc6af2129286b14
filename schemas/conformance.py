"""Checks that each pydantic model agrees with its ``.avsc`` record: field names and order,
types, optionality, defaults and enum symbols. Used by the contract tests and by
``tripwire schemas check``; the ``.avsc`` files are the source of truth."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel
from pydantic_core import PydanticUndefined

from tripwire.schemas.catalog import SchemaCatalog

_PRIMITIVES: dict[str, type] = {
    "string": str,
    "long": int,
    "int": int,
    "double": float,
    "float": float,
    "boolean": bool,
    "bytes": bytes,
}


def _strip(tp: Any) -> Any:
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    return tp


def _optional(tp: Any) -> tuple[bool, Any]:
    tp = _strip(tp)
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != len(get_args(tp)) and len(args) == 1:
            return True, _strip(args[0])
    return False, tp


def records_in(schema: Any) -> dict[str, dict[str, Any]]:
    """Top-level records of a schema (a record, or a union of records), by full name."""
    out: dict[str, dict[str, Any]] = {}
    for s in schema if isinstance(schema, list) else [schema]:
        if isinstance(s, dict) and s.get("type") == "record":
            ns = s.get("namespace", "")
            out[f"{ns}.{s['name']}" if ns else s["name"]] = s
    return out


def _named(schema: Any, acc: dict[str, Any]) -> None:
    """Collect named types (enums, records) by short name, to resolve references."""
    if isinstance(schema, list):
        for s in schema:
            _named(s, acc)
    elif isinstance(schema, dict):
        if schema.get("type") in ("enum", "record", "fixed"):
            acc.setdefault(schema["name"], schema)
        for f in schema.get("fields", []):
            _named(f["type"], acc)
        for k in ("items", "values"):
            if k in schema:
                _named(schema[k], acc)


def _type_problem(avro: Any, py: Any, named: dict[str, Any]) -> str | None:
    """None when the Avro type and the (non-optional) Python type agree, else a description."""
    py = _strip(py)
    if isinstance(avro, str) and avro in named:
        avro = named[avro.rsplit(".", 1)[-1]]
    if isinstance(avro, str):
        want = _PRIMITIVES.get(avro)
        if want is None:
            return f"unsupported Avro type {avro}"
        if want is str and get_origin(py) is Literal:
            return None if all(isinstance(a, str) for a in get_args(py)) else f"Literal {py} is not all strings"
        if isinstance(py, type) and issubclass(py, Enum):
            return f"Avro {avro} but model has enum {py.__name__}"
        return None if py is want else f"Avro {avro} but model has {py}"
    if isinstance(avro, list):
        return f"non-null union {avro} is not supported by the models"
    kind = avro.get("type")
    if avro.get("logicalType") == "timestamp-micros":
        return None if py in (datetime, AwareDatetime) else f"Avro timestamp-micros but model has {py}"
    if kind == "enum":
        if not (isinstance(py, type) and issubclass(py, Enum)):
            return f"Avro enum {avro['name']} but model has {py}"
        symbols = [m.value for m in py]
        return None if symbols == avro["symbols"] else f"enum symbols {avro['symbols']} != {py.__name__} {symbols}"
    if kind == "array":
        if get_origin(py) is not list:
            return f"Avro array but model has {py}"
        return _type_problem(avro["items"], get_args(py)[0], named)
    if kind == "map":
        if get_origin(py) is not dict or _strip(get_args(py)[0]) is not str:
            return f"Avro map but model has {py}"
        return _type_problem(avro["values"], get_args(py)[1], named)
    if kind in _PRIMITIVES:
        return _type_problem(kind, py, named)
    return f"unsupported Avro type {avro}"


def _model_default(info: Any) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    return info.default


def _avro_default(field: dict[str, Any], nullable: bool) -> Any:
    d = field["default"]
    ftype = field["type"]
    if isinstance(d, str) and (ftype == "bytes" or (isinstance(ftype, list) and "bytes" in ftype and d is not None)):
        return d.encode("latin-1")
    return d


def compare_model(model: type[BaseModel], record: dict[str, Any], named: dict[str, Any]) -> list[str]:
    """Every disagreement between ``model`` and the Avro ``record`` schema (empty = they agree)."""
    problems: list[str] = []
    where = f"{model.__name__} vs {record['name']}"
    avro_fields = [f["name"] for f in record["fields"]]
    model_fields = list(model.model_fields)
    if avro_fields != model_fields:
        missing = [f for f in avro_fields if f not in model_fields]
        extra = [f for f in model_fields if f not in avro_fields]
        problems.append(f"{where}: fields differ (missing in model {missing}, not in schema {extra}, order)")
    for f in record["fields"]:
        info = model.model_fields.get(f["name"])
        if info is None:
            continue
        ftype = f["type"]
        avro_nullable = isinstance(ftype, list) and "null" in ftype
        model_nullable, inner = _optional(info.annotation)
        if avro_nullable != model_nullable:
            problems.append(f"{where}.{f['name']}: optional in schema={avro_nullable}, in model={model_nullable}")
            continue
        if avro_nullable:
            rest = [t for t in ftype if t != "null"]
            if len(rest) != 1 or ftype[0] != "null":
                problems.append(f"{where}.{f['name']}: nullable unions must be ['null', T]")
                continue
            ftype = rest[0]
        p = _type_problem(ftype, inner, named)
        if p:
            problems.append(f"{where}.{f['name']}: {p}")
        has_avro_default = "default" in f
        model_default = _model_default(info)
        has_model_default = model_default is not PydanticUndefined
        if has_avro_default != has_model_default:
            problems.append(f"{where}.{f['name']}: default in schema={has_avro_default}, in model={has_model_default}")
        elif has_avro_default and _avro_default(f, avro_nullable) != model_default:
            problems.append(f"{where}.{f['name']}: default {f['default']!r} in schema, {model_default!r} in model")
    return problems


def check_models(catalog: SchemaCatalog, models: Iterable[type[BaseModel]]) -> list[str]:
    """Compare each model with the record of the same full name in its current schema; also
    report current records that no model covers."""
    problems: list[str] = []
    covered: set[str] = set()
    for model in models:
        sv = catalog.current(model.SCHEMA_NAME)  # type: ignore[attr-defined]
        recs = records_in(sv.schema)
        name = model.AVRO_NAME  # type: ignore[attr-defined]
        if name not in recs:
            problems.append(f"{model.__name__}: no record {name} in {sv.path}")
            continue
        covered.add(name)
        named: dict[str, Any] = {}
        _named(sv.schema, named)
        problems += compare_model(model, recs[name], named)
    for schema_name in catalog.names():
        for rec_name in records_in(catalog.current(schema_name).schema):
            if rec_name not in covered:
                problems.append(f"record {rec_name} ({schema_name}) has no model")
    return problems
