"""The models' rules applied to a decoded Avro record dict, without building a pydantic model.

fastavro has already checked every Avro type (string, long, double, boolean, enum symbol,
``timestamp-micros``) when it hands the codec a record dict, so pydantic's own validation repeats
work and then applies the few rules Avro cannot express: string shapes (hex ids, UUIDs, non-empty
names), numeric ranges (counts >= 0, money >= 0 and finite), aware UTC timestamps, and the models'
cross-field validators (``ts_end >= ts_start``, ``RunStarted.seq == 0``, ``last_seq == seq``).

:func:`field_checks` compiles those rules for one model *from the model's own field metadata*
(``StringConstraints``, ``Ge``/``Le``, ``allow_inf_nan=False``, the ``_to_utc`` after-validator) and
maps each ``@model_validator`` to its plain-Python equivalent in :data:`MODEL_RULES`. Anything it
does not know (a new constraint kind, a field validator, a model validator missing from
:data:`MODEL_RULES`, a container or literal field) makes it return None, and the codec then keeps
pydantic validation for that model: a rule can never be skipped silently. ``tests/unit/
test_contract_fieldchecks.py`` proves the equivalence case by case and on random records.

Verdicts only: :meth:`FieldChecks.problem` returns the first broken rule (``"field: why"``) or None.
The codec describes a rejected record with pydantic's full message on that (rare) error path.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from enum import Enum
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints
from pydantic.fields import FieldInfo

from tripwire.schemas._types import _to_utc

Fields = dict[str, Any]


def _ts_order(f: Fields) -> str | None:
    if f["ts_end"] < f["ts_start"]:
        return "ts_end: is before ts_start"
    return None


def _first(f: Fields) -> str | None:
    return None if f["seq"] == 0 else "seq: RunStarted must have seq 0"


def _last(f: Fields) -> str | None:
    return None if f["last_seq"] == f["seq"] else "last_seq: must equal this event's seq"


MODEL_RULES: dict[str, Callable[[Fields], str | None]] = {
    # "<class that defines the validator>.<name>": the same rule on the record dict
    "EventBase._check_base": _ts_order,
    "RunStarted._first": _first,
    "RunFinished._last": _last,
}
"""Plain-Python equivalents of the models' ``@model_validator`` methods, by defining class and name."""


class _Unsupported(Exception):
    """A rule this module cannot express: the model keeps pydantic validation."""


@dataclass(frozen=True, slots=True)
class _Str:
    name: str
    optional: bool
    min_len: int | None
    max_len: int | None
    pattern: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class _Num:
    name: str
    optional: bool
    lo: float | None  # inclusive
    hi: float | None
    lo_open: bool
    hi_open: bool
    finite: bool


@dataclass(frozen=True, slots=True)
class FieldChecks:
    """The compiled rules of one model (see the module doc).

    ``problem(fields)`` returns the first rule the record dict breaks (``"field: why"``) or None, and
    normalises aware datetimes to UTC in place. It is generated Python source, one statement per
    rule with the field names and bounds inlined (``source`` keeps it for review): a loop over rule
    objects costs about four times as much per event."""

    model: type[BaseModel]
    nonempty: tuple[str, ...]  # required strings that only need min_length=1
    strings: tuple[_Str, ...]  # everything else on strings (patterns, lengths, optional non-empty)
    numbers: tuple[_Num, ...]
    datetimes: tuple[tuple[str, bool], ...]  # (field, optional): aware, normalised to UTC
    rules: tuple[Callable[[Fields], str | None], ...]
    problem: Callable[[Fields], str | None]
    source: str


def _aware(f: Fields, name: str) -> str | None:
    """A datetime whose tzinfo is not ``UTC``: rejected when naive, else converted (AwareDatetime + _to_utc)."""
    v = f[name]
    if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
        return f"{name}: must be timezone-aware"
    f[name] = v.astimezone(UTC)
    return None


def _generate(
    nonempty: list[str], strings: list[_Str], numbers: list[_Num], datetimes: list[tuple[str, bool]], n_rules: int
) -> tuple[str, dict[str, Any]]:
    env: dict[str, Any] = {"_isfinite": math.isfinite, "_UTC": UTC, "_aware": _aware}
    out = ["def problem(f):"]

    def fail(cond: str, msg: str) -> None:
        out.append(f"    if {cond}:")
        out.append(f"        return {msg!r}")

    for name in nonempty:
        fail(f"not f[{name!r}]", f"{name}: must not be empty")
    for i, st in enumerate(strings):
        out.append(f"    v = f[{st.name!r}]")
        conds = []
        if st.min_len is not None and st.min_len == st.max_len:
            conds.append(f"len(v) != {st.min_len}")
        else:
            if st.min_len is not None:
                conds.append(f"len(v) < {st.min_len}")
            if st.max_len is not None:
                conds.append(f"len(v) > {st.max_len}")
        if st.pattern is not None:
            env[f"_p{i}"] = st.pattern.search
            conds.append(f"_p{i}(v) is None")
        cond = " or ".join(conds) or "False"
        cond = f"v is not None and ({cond})" if st.optional else cond  # required: Avro guarantees a string
        fail(cond, f"{st.name}: does not have the required shape")
    for c in numbers:
        out.append(f"    v = f[{c.name!r}]")
        chain = "v"  # one chained comparison: lo <= v <= hi (NaN fails every comparison)
        if c.lo is not None:
            chain = f"{c.lo!r} {'<' if c.lo_open else '<='} {chain}"
        if c.hi is not None:
            chain = f"{chain} {'<' if c.hi_open else '<='} {c.hi!r}"
        ok = [] if chain == "v" else [chain]
        if c.finite:
            ok.append("_isfinite(v)")
        cond = f"not ({' and '.join(ok)})"
        cond = f"v is not None and {cond}" if c.optional else cond  # required: Avro guarantees a number
        fail(cond, f"{c.name}: out of range")
    for name, optional in datetimes:
        out.append(f"    v = f[{name!r}]")  # a timestamp-micros: fastavro returns an aware UTC datetime
        out.append("    if v is not None and v.tzinfo is not _UTC:" if optional else "    if v.tzinfo is not _UTC:")
        out.append(f"        why = _aware(f, {name!r})")
        out.append("        if why is not None:")
        out.append("            return why")
    for i in range(n_rules):
        out.append(f"    why = _r{i}(f)")
        out.append("    if why is not None:")
        out.append("        return why")
    out.append("    return None")
    return "\n".join(out) + "\n", env


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """(base type, optional, metadata) of a field annotation such as ``Annotated[str, ...] | None``."""
    optional = False
    meta: list[Any] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(annotation)) != 2:
            raise _Unsupported(f"union {annotation!r}")
        optional, annotation = True, args[0]
    while typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        meta.extend(extra)
        annotation = base
    return annotation, optional, meta


def _flatten(meta: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in meta:
        if isinstance(m, FieldInfo):
            if m.annotation is not None and m.annotation is not type(None):
                raise _Unsupported(f"nested field annotation {m.annotation!r}")
            out.extend(_flatten(list(m.metadata)))
        else:
            out.append(m)
    return out


def _compile(model: type[BaseModel]) -> FieldChecks:
    decorators = model.__pydantic_decorators__
    if decorators.field_validators or decorators.field_serializers or decorators.root_validators:
        raise _Unsupported("field validators")
    finite_floats = model.model_config.get("allow_inf_nan", True) is False
    nonempty: list[str] = []
    strings: list[_Str] = []
    numbers: list[_Num] = []
    datetimes: list[tuple[str, bool]] = []
    for name, info in model.model_fields.items():
        base, optional, meta = _unwrap(info.annotation)
        meta = _flatten([*meta, *info.metadata])
        if base is str:
            lo = hi = None
            pattern = None
            for m in meta:
                if not isinstance(m, StringConstraints):
                    raise _Unsupported(f"{name}: {m!r}")
                if m.strip_whitespace or m.to_upper or m.to_lower or m.strict or m.ascii_only:
                    raise _Unsupported(f"{name}: {m!r}")
                lo = m.min_length if m.min_length is not None else lo
                hi = m.max_length if m.max_length is not None else hi
                if m.pattern is not None:
                    # pydantic-core's regex: '^' and '$' anchor the whole text (no '$' before a final newline)
                    p = m.pattern if isinstance(m.pattern, str) else m.pattern.pattern
                    if p.endswith("$") and not p.endswith("\\$"):
                        p = p[:-1] + r"\Z"
                    pattern = re.compile(p)
            if lo == 1 and hi is None and pattern is None and not optional:
                nonempty.append(name)
            elif lo is not None or hi is not None or pattern is not None:
                strings.append(_Str(name, optional, lo, hi, pattern))
        elif base in (int, float):
            lo_v: float | None = None
            hi_v: float | None = None
            lo_open = hi_open = False
            for m in meta:
                if isinstance(m, Ge):
                    lo_v, lo_open = m.ge, False  # type: ignore[assignment]
                elif isinstance(m, Gt):
                    lo_v, lo_open = m.gt, True  # type: ignore[assignment]
                elif isinstance(m, Le):
                    hi_v, hi_open = m.le, False  # type: ignore[assignment]
                elif isinstance(m, Lt):
                    hi_v, hi_open = m.lt, True  # type: ignore[assignment]
                else:
                    raise _Unsupported(f"{name}: {m!r}")
            finite = base is float and finite_floats
            if lo_v is not None or hi_v is not None or finite:
                numbers.append(_Num(name, optional, lo_v, hi_v, lo_open, hi_open, finite))
        elif base is AwareDatetime:
            if any(not (isinstance(m, AfterValidator) and m.func is _to_utc) for m in meta):
                raise _Unsupported(f"{name}: {meta!r}")
            datetimes.append((name, optional))
        elif base is bool or (isinstance(base, type) and issubclass(base, Enum)):
            if meta:  # Avro checked the type / symbol; the codec turns symbols into members
                raise _Unsupported(f"{name}: {meta!r}")
        else:
            raise _Unsupported(f"{name}: type {base!r}")
    rules = []
    for dec in decorators.model_validators.values():
        qualname = getattr(getattr(dec.func, "__func__", dec.func), "__qualname__", "?")
        rule = MODEL_RULES.get(qualname)
        if rule is None or dec.info.mode != "after":
            raise _Unsupported(f"model validator {qualname}")
        rules.append(rule)
    source, env = _generate(nonempty, strings, numbers, datetimes, len(rules))
    env.update({f"_r{i}": rule for i, rule in enumerate(rules)})
    exec(compile(source, f"<fieldchecks {model.__name__}>", "exec"), env)
    return FieldChecks(
        model, tuple(nonempty), tuple(strings), tuple(numbers), tuple(datetimes), tuple(rules), env["problem"], source
    )


def field_checks(model: type[BaseModel]) -> FieldChecks | None:
    """The compiled rules of ``model``, or None when a rule cannot be expressed here (keep pydantic)."""
    try:
        return _compile(model)
    except _Unsupported:
        return None


__all__ = ["MODEL_RULES", "FieldChecks", "field_checks"]
