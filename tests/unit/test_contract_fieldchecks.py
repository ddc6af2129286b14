"""The validated decode without pydantic (schemas/fieldchecks.py) keeps every rule of the event models.

Each rejecting case of the pydantic model tests (test_contract_models.py, test_contract_bad_input.py)
and one per further rule is rejected by the compiled checks too, on the dict and through the codec;
random records (seeded hypothesis) get the same verdict and, when valid, the same model."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from tripwire.schemas import (
    Alert,
    ApprovalDecision,
    AvroCodec,
    DeadLetter,
    DecodeError,
    KillSwitchCommand,
    ModelCall,
    RunFinished,
    RunStarted,
    RunSummary,
    ToolCall,
    WindowStats,
    decode,
    default_catalog,
    to_record,
)
from tripwire.schemas import fieldchecks as fc
from tripwire.schemas.samples import sample_run

pytestmark = pytest.mark.unit

EVENTS = default_catalog().current("events")
HEADER = b"\xc3\x01" + EVENTS.fingerprint
RUN = sample_run(5, steps=4)
BY_TYPE: dict[type, Any] = {}
for _e in RUN:
    BY_TYPE.setdefault(type(_e), _e)
TYPES = (ModelCall, ToolCall, ApprovalDecision, RunFinished, RunStarted)


def _checks(model: type[BaseModel]) -> fc.FieldChecks:
    c = fc.field_checks(model)
    assert c is not None
    return c


def _raw(model: type[BaseModel], rec: dict[str, Any]) -> bytes:
    """Bytes fastavro writes for ``rec`` with the events union (no model validation on the way)."""
    buf = io.BytesIO()
    buf.write(HEADER)
    schemaless_writer(buf, EVENTS.parsed, (model.AVRO_NAME, rec))  # type: ignore[attr-defined]
    return buf.getvalue()


def test_every_event_model_compiles_and_records_keep_pydantic() -> None:
    for model in TYPES:
        assert fc.field_checks(model) is not None, model.__name__
    # records with list, dict or Literal fields (or their own model validators) stay on pydantic
    for model in (RunSummary, WindowStats, Alert, KillSwitchCommand, DeadLetter):
        assert fc.field_checks(model) is None, model.__name__


def test_every_model_validator_has_its_equivalent() -> None:
    for model in TYPES:
        validators = model.__pydantic_decorators__.model_validators.values()
        names = {v.func.__qualname__ for v in validators}  # type: ignore[union-attr]
        assert names <= set(fc.MODEL_RULES), names - set(fc.MODEL_RULES)
        assert len(_checks(model).rules) == len(names)


def test_an_unknown_rule_falls_back_to_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    class Shouty(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, v: str) -> str:
            return v.upper()

    assert fc.field_checks(Shouty) is None  # a field validator it cannot express
    monkeypatch.delitem(fc.MODEL_RULES, "RunFinished._last")
    assert fc.field_checks(RunFinished) is None  # a model validator without its equivalent
    codec = AvroCodec()  # built now: RunFinished keeps pydantic validation
    rf = to_record(BY_TYPE[RunFinished])
    with pytest.raises(DecodeError, match="last_seq") as e:
        codec.decode(_raw(RunFinished, {**rf, "last_seq": rf["seq"] + 1}))
    assert e.value.reason == "invalid"


# (model, field, value): each is rejected by the pydantic model (asserted) and must be by the checks.
# Values Avro can carry go through the codec too; the rest (naive datetimes) are checked on the dict.
REJECTED: list[tuple[type[BaseModel], str, Any]] = [
    # test_contract_models.py::test_model_call_rejects (the values an Avro record can hold)
    (ModelCall, "input_tokens", -1),
    (ModelCall, "cache_read_tokens", -5),
    (ModelCall, "reasoning_tokens", -1),
    (ModelCall, "cost_usd", -0.01),
    (ModelCall, "cost_usd", float("nan")),
    (ModelCall, "cost_usd", float("inf")),
    (ModelCall, "trace_id", "AB" * 16),
    (ModelCall, "trace_id", "ab" * 15),
    (ModelCall, "trace_id", "0" * 32),
    (ModelCall, "span_id", "xyz0123456789abc"),
    (ModelCall, "span_id", "0" * 16),
    (ModelCall, "parent_span_id", "abc"),
    (ModelCall, "event_id", "not-a-uuid"),
    (ModelCall, "agent_id", ""),
    (ModelCall, "seq", -1),
    (ModelCall, "ts_start", datetime(2026, 1, 1, 0, 0)),  # naive
    # test_contract_bad_input.py::test_schema_valid_but_model_invalid
    (ModelCall, "trace_id", "not-hex-at-all-but-a-valid-avro-string"),
    (ModelCall, "input_tokens", -5),
    (ModelCall, "cost_usd", -1.0),
    (ModelCall, "event_id", "nope"),
    # every other rule of the event models
    (ModelCall, "trace_id", "ab" * 16 + "\n"),  # pydantic's '$' does not allow a final newline
    (ModelCall, "event_id", "12345678-1234-1234-1234-1234567890ab\n"),
    (ModelCall, "span_id", "ab" * 9),
    (ModelCall, "parent_span_id", "0" * 16),
    (ModelCall, "schema_version", 0),
    (ModelCall, "output_tokens", -1),
    (ModelCall, "cache_write_tokens", -1),
    (ModelCall, "cost_usd", float("-inf")),
    (ModelCall, "tenant", ""),
    (ModelCall, "run_id", ""),
    (ModelCall, "operation_name", ""),
    (ModelCall, "provider", ""),
    (ModelCall, "request_model", ""),
    (ModelCall, "ts_end", datetime(2026, 1, 2, 3, 4, 5)),  # naive
    (ToolCall, "tool_name", ""),
    (ToolCall, "tool_call_id", ""),
    (ToolCall, "args_hash", "abc"),
    (ToolCall, "args_hash", "A" * 64),
    (ToolCall, "seq", -3),
    (ApprovalDecision, "tool_name", ""),
    (ApprovalDecision, "tool_call_id", ""),
    (ApprovalDecision, "trace_id", "g" * 32),
    (RunStarted, "seq", 1),  # RunStarted must have seq 0
    (RunStarted, "max_steps", -1),
    (RunStarted, "max_tool_calls", -1),
    (RunStarted, "max_prompt_tokens", -1),
    (RunStarted, "max_completion_tokens", -1),
    (RunStarted, "max_cost_usd", -0.5),
    (RunStarted, "max_cost_usd", float("nan")),
    (RunStarted, "max_cost_usd", float("inf")),
    (RunFinished, "last_seq", 99),  # must equal seq
    (RunFinished, "last_seq", -1),
    (RunFinished, "event_id", ""),
]


@pytest.mark.parametrize(("model", "field", "value"), REJECTED, ids=lambda x: getattr(x, "__name__", repr(x)[:24]))
def test_every_pydantic_rejection_is_rejected(model: type[BaseModel], field: str, value: Any) -> None:
    rec = {**to_record(BY_TYPE[model]), field: value}
    with pytest.raises(ValidationError):
        model.model_validate(rec)  # the case is a real pydantic rejection
    why = _checks(model).problem(dict(rec))
    assert why is not None and why.startswith(f"{field}:"), why
    if isinstance(value, datetime) and value.tzinfo is None:
        return  # not representable in Avro (timestamp-micros is UTC): checked on the dict only
    with pytest.raises(DecodeError) as e:
        decode(_raw(model, rec))
    assert e.value.reason == "invalid"
    assert field in str(e.value)


def test_ts_end_before_ts_start_is_rejected_for_every_event_type() -> None:
    for model in TYPES:
        rec = to_record(BY_TYPE[model])
        rec["ts_end"] = rec["ts_start"] - timedelta(microseconds=1)
        assert _checks(model).problem(dict(rec)) == "ts_end: is before ts_start"
        with pytest.raises(DecodeError, match="ts_end") as e:
            decode(_raw(model, rec))
        assert e.value.reason == "invalid"


def test_valid_events_decode_to_the_pydantic_model() -> None:
    for e in sample_run(9, steps=6):
        rec = to_record(e)
        assert _checks(type(e)).problem(dict(rec)) is None
        got = decode(_raw(type(e), rec))
        assert type(got) is type(e)
        assert got == type(e).model_validate(rec) == e
        assert got.model_fields_set == type(e).model_validate(rec).model_fields_set == set(rec)


def test_aware_datetimes_are_normalised_to_utc_like_pydantic() -> None:
    rec = to_record(BY_TYPE[ModelCall])
    plus2 = timezone(timedelta(hours=2))
    rec["ts_start"] = rec["ts_start"].astimezone(plus2)
    fields = dict(rec)
    assert _checks(ModelCall).problem(fields) is None
    assert fields["ts_start"].tzinfo is UTC
    assert fields["ts_start"] == ModelCall.model_validate(rec).ts_start


def test_rejections_name_the_fields_and_never_echo_values() -> None:
    secret = "4111-1111-1111-1111 jane@example.com"
    rec = {**to_record(BY_TYPE[ModelCall]), "trace_id": secret, "input_tokens": -7}
    with pytest.raises(DecodeError) as e:
        decode(_raw(ModelCall, rec))
    assert e.value.reason == "invalid"
    assert "trace_id" in str(e.value) and "input_tokens" in str(e.value)
    assert "4111" not in str(e.value) and "-7" not in str(e.value)


# -- random records: same verdict as pydantic, same model when valid -------------------------------

_HEX = "0123456789abcdef"
_strings = st.one_of(
    st.sampled_from(["", "a", "0" * 16, "0" * 32, "ab" * 8, "ab" * 16, "AB" * 16, "f" * 64, "ab" * 16 + "\n"]),
    st.text(alphabet=_HEX, min_size=15, max_size=33),
    st.text(alphabet=_HEX + "-", min_size=35, max_size=37),
    st.uuids().map(str),
    st.text(max_size=8),
)
_ints = st.one_of(st.sampled_from([-1, 0, 1, 2**31 - 1, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
_floats = st.one_of(st.sampled_from([0.0, -0.0, -1e-300, 1e308, math.inf, -math.inf, math.nan]), st.floats())
_shift = st.integers(-(10**8), 10**8).map(lambda us: timedelta(microseconds=us))


def _mutate(model: type[BaseModel], base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    rec = dict(base)
    names = data.draw(st.lists(st.sampled_from(sorted(rec)), min_size=1, max_size=3, unique=True))
    for name in names:
        base, optional, _ = fc._unwrap(model.model_fields[name].annotation)  # the Avro type of the field
        pool = {str: _strings, int: _ints, float: _floats}.get(base)
        if name in ("ts_start", "ts_end"):
            rec[name] = rec[name] + data.draw(_shift)
        elif pool is not None:
            rec[name] = data.draw(st.one_of(pool, st.none()) if optional else pool)
    return rec


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPES), st.data())
def test_property_same_verdict_and_model_as_pydantic(model: type[BaseModel], data: st.DataObject) -> None:
    rec = _mutate(model, to_record(BY_TYPE[model]), data)
    try:
        expected: BaseModel | None = model.model_validate(rec)
    except ValidationError:
        expected = None
    why = _checks(model).problem(dict(rec))
    event("valid" if expected is not None else "invalid")
    assert (why is None) == (expected is not None), (why, rec)
    try:
        raw = _raw(model, rec)
    except (ValueError, TypeError, OverflowError):
        return  # not an Avro record of this schema (e.g. a long out of range): fastavro refuses to write it
    if expected is None:
        with pytest.raises(DecodeError) as e:
            decode(raw)
        assert e.value.reason == "invalid"
    else:
        got = decode(raw)
        assert type(got) is model and got == expected
