"""Property: any valid ModelCall / ToolCall survives encode -> decode unchanged, through both our
decoder (validated and trusted) and the Apache avro reference reader."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import avro.io
import avro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripwire.schemas import (
    CallStatus,
    CostSource,
    ModelCall,
    Risk,
    ToolCall,
    decode,
    default_catalog,
    encode,
    to_record,
)

pytestmark = pytest.mark.unit

INT64 = 2**63 - 1
_AVRO_EVENTS = avro.schema.parse(default_catalog().current("events").path.read_text())

hexid = lambda n: st.text("0123456789abcdef", min_size=n, max_size=n).filter(lambda s: s.strip("0"))  # noqa: E731
text = st.text(max_size=60)
opt_text = st.none() | text
times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@st.composite
def base(draw):
    start = draw(times)
    return {
        "event_id": str(draw(st.uuids())),
        "tenant": draw(text.filter(bool)),
        "agent_id": draw(text.filter(bool)),
        "agent_version": draw(text),
        "workflow": draw(text),
        "environment": draw(text),
        "principal": draw(opt_text),
        "credential_fingerprint": draw(opt_text),
        "trace_id": draw(hexid(32)),
        "span_id": draw(hexid(16)),
        "parent_span_id": draw(st.none() | hexid(16)),
        "run_id": draw(text.filter(bool)),
        "seq": draw(st.integers(0, INT64)),
        "ts_start": start,
        "ts_end": start + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))),
    }


tokens = st.integers(0, INT64)
cost = st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False)

model_calls = st.builds(
    lambda b, **kw: ModelCall(**b, **kw),
    base(),
    provider=text.filter(bool),
    request_model=text.filter(bool),
    response_model=opt_text,
    input_tokens=tokens,
    cache_read_tokens=tokens,
    cache_write_tokens=tokens,
    output_tokens=tokens,
    reasoning_tokens=tokens,
    cost_usd=cost,
    cost_source=st.sampled_from(CostSource),
    price_version=opt_text,
    status=st.sampled_from(CallStatus),
    finish_reason=opt_text,
    error_type=opt_text,
    prompt=st.none() | st.text(max_size=500),
    completion=st.none() | st.text(max_size=500),
)
tool_calls = st.builds(
    lambda b, **kw: ToolCall(**b, **kw),
    base(),
    tool_name=text.filter(bool),
    tool_call_id=text.filter(bool),
    risk=st.sampled_from(Risk),
    args=opt_text,
    args_hash=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    status=st.sampled_from(CallStatus),
    error_type=opt_text,
    idempotency_key=opt_text,
    approval_ref=opt_text,
    side_effect=st.booleans(),
    blocked_reason=opt_text,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_calls | tool_calls)
def test_round_trip_property(event):
    data = encode(event)
    assert decode(data) == event
    assert decode(data, validate=False) == event
    got = avro.io.DatumReader(_AVRO_EVENTS).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert got == to_record(event)
