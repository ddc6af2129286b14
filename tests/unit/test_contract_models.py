"""Model validation rules of the contract, and the topic names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from tripwire.schemas import (
    CallStatus,
    Event,
    KillSwitchCommand,
    ModelCall,
    RunFinished,
    RunStarted,
    ToolCall,
    from_record,
    to_record,
    topic_names,
    topics,
)
from tripwire.schemas.samples import sample_records, sample_run

pytestmark = pytest.mark.unit


def _model_call(**over):
    base = to_record(sample_run(0)[1])
    base.update(over)
    return base


def test_sample_run_is_valid_and_sequenced():
    events = sample_run(7, steps=4)
    assert [e.seq for e in events] == list(range(len(events)))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].last_seq == len(events) - 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_tokens", -1),
        ("cache_read_tokens", -5),
        ("reasoning_tokens", -1),
        ("output_tokens", 2**63),
        ("cost_usd", -0.01),
        ("cost_usd", float("nan")),
        ("cost_usd", float("inf")),
        ("trace_id", "AB" * 16),  # upper case
        ("trace_id", "ab" * 15),  # 30 chars
        ("trace_id", "0" * 32),  # all zero is invalid in W3C trace context
        ("span_id", "xyz0123456789abc"),
        ("span_id", "0" * 16),
        ("parent_span_id", "abc"),
        ("event_id", "not-a-uuid"),
        ("status", "exploded"),
        ("cost_source", "guess"),
        ("agent_id", ""),
        ("seq", -1),
        ("ts_start", datetime(2026, 1, 1, 0, 0)),  # naive datetimes are rejected
        ("unknown_field", 1),
    ],
)
def test_model_call_rejects(field, value):
    with pytest.raises(ValidationError) as e:
        ModelCall.model_validate(_model_call(**{field: value}))
    assert field in str(e.value) or "ts_end" in str(e.value)


def test_ts_end_before_ts_start_rejected():
    rec = _model_call()
    rec["ts_end"] = rec["ts_start"] - timedelta(microseconds=1)
    with pytest.raises(ValidationError, match="ts_end"):
        ModelCall.model_validate(rec)


def test_timestamps_normalised_to_utc():
    rec = _model_call()
    plus2 = timezone(timedelta(hours=2))
    rec["ts_start"] = rec["ts_start"].astimezone(plus2)
    m = ModelCall.model_validate(rec)
    assert m.ts_start.tzinfo is UTC
    assert m.ts_start == rec["ts_start"]


def test_enum_values_are_lowercase_symbols():
    m = ModelCall.model_validate(_model_call(status="timeout"))
    assert m.status is CallStatus.TIMEOUT
    assert m.status == "timeout"


def test_run_started_must_be_seq_zero_and_run_finished_last_seq_matches():
    rs = to_record(sample_run(0)[0])
    with pytest.raises(ValidationError, match="seq 0"):
        RunStarted.model_validate({**rs, "seq": 1})
    rf = to_record(sample_run(0)[-1])
    with pytest.raises(ValidationError, match="last_seq"):
        RunFinished.model_validate({**rf, "last_seq": rf["seq"] + 1})


def test_tool_call_args_hash_must_be_sha256_hex():
    tc = next(e for e in sample_run(0) if isinstance(e, ToolCall))
    with pytest.raises(ValidationError, match="args_hash"):
        ToolCall.model_validate({**to_record(tc), "args_hash": "abc"})


def test_kill_switch_throttle_needs_rate():
    ks = to_record(next(r for r in sample_records() if isinstance(r, KillSwitchCommand)))
    with pytest.raises(ValidationError, match="throttle_per_minute"):
        KillSwitchCommand.model_validate({**ks, "action": "throttle", "throttle_per_minute": None})


def test_to_record_from_record_round_trip_every_type():
    for m in [*sample_run(3, steps=4), *sample_records()]:
        rec = to_record(m)
        assert list(rec) == list(type(m).model_fields)
        assert from_record(type(m), rec) == m
        rec["__probe"] = 1  # to_record returns a copy
        assert "__probe" not in m.__dict__


def test_from_record_event_union_picks_the_type():
    for e in sample_run(2, steps=4):
        assert type(from_record(Event, to_record(e))) is type(e)


def test_topic_names():
    assert topics.EVENTS == "tripwire.events.v1"
    t = topic_names("t_ab12")
    assert t.events == "t_ab12.tripwire.events.v1"
    assert t.killswitch == "t_ab12.tripwire.killswitch.v1"
    assert t.all() == tuple("t_ab12." + n for n in topic_names().all())
    assert topic_names().all() == (
        "tripwire.events.v1",
        "tripwire.runs.v1",
        "tripwire.metrics.v1",
        "tripwire.alerts.v1",
        "tripwire.killswitch.v1",
        "tripwire.dlq.v1",
    )
