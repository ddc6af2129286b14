"""Single-object encode/decode round trips and the wire format."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta

import pytest
from fastavro import parse_schema, schemaless_reader

from tripwire.schemas import (
    AvroCodec,
    DecodeError,
    EncodeError,
    ModelCall,
    decode,
    default_catalog,
    encode,
    to_record,
)
from tripwire.schemas.samples import sample_records, sample_run

pytestmark = pytest.mark.unit

ALL = [*sample_run(11, steps=5), *sample_records()]


@pytest.mark.parametrize("record", ALL, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("validate", [True, False])
def test_round_trip(record, validate):
    data = encode(record, validate=validate)
    back = decode(data, validate=validate)
    assert type(back) is type(record)
    assert back == record
    assert to_record(back) == to_record(record)


def test_header_is_single_object_marker_and_writer_fingerprint():
    cat = default_catalog()
    for r in ALL:
        data = encode(r)
        assert data[:2] == b"\xc3\x01"
        assert data[2:10] == cat.current(type(r).SCHEMA_NAME).fingerprint


def test_events_share_the_union_writer_schema():
    headers = {encode(e)[:10] for e in sample_run(0, steps=4)}
    assert len(headers) == 1


def test_union_branch_index_is_the_first_body_byte():
    # zig-zag varint of the branch index; RunStarted is last so that writers which pick the first
    # branch a datum validates against (e.g. the Apache avro library) choose the right one
    events = sample_run(0, steps=4)
    index = {"ModelCall": 0, "ToolCall": 1, "ApprovalDecision": 2, "RunFinished": 3, "RunStarted": 4}
    for e in events:
        assert encode(e)[10] == index[type(e).__name__] * 2


def _strip_logical(schema):
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    return schema


def test_timestamps_are_micros_since_epoch():
    e = sample_run(0)[1]
    raw_schema = parse_schema(_strip_logical(default_catalog().current("events").schema))
    name, raw = schemaless_reader(io.BytesIO(encode(e)[10:]), raw_schema, None, True)
    assert name == "tripwire.events.ModelCall"
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert raw["ts_start"] == (e.ts_start - epoch) // timedelta(microseconds=1)
    assert raw["ts_end"] == (e.ts_end - epoch) // timedelta(microseconds=1)
    assert raw["ts_start"] % 1_000_000 == 678901


def test_encode_validate_catches_a_mutated_model():
    m = sample_run(0)[1]
    bad = m.model_copy(update={"input_tokens": -3})  # model_copy does not validate
    with pytest.raises(EncodeError, match="input_tokens"):
        encode(bad)
    # the trusted path writes what it is given, and decode(validate=True) catches it
    data = encode(bad, validate=False)
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.reason == "invalid"


def test_encode_rejects_non_contract_objects():
    with pytest.raises(EncodeError):
        encode(object())  # type: ignore[arg-type]


def test_encode_incomplete_constructed_model_is_encode_error():
    m = ModelCall.model_construct(provider="x")
    with pytest.raises(EncodeError):
        encode(m, validate=False)


def test_decode_error_has_reason():
    with pytest.raises(DecodeError) as e:
        decode(b"\xc3\x01" + struct.pack("<q", 42) + b"\x00")
    assert e.value.reason == "unknown_fingerprint"
    assert "fingerprint" in str(e.value)


def test_codec_instances_are_independent_and_cache_plans():
    c = AvroCodec()
    data = encode(ALL[1])
    assert c.decode(data) == ALL[1]
    assert c.decode(data) == ALL[1]
    assert len(c._read) == 1
