"""Bad input never escapes as anything but a typed DecodeError carrying a reason."""

from __future__ import annotations

import io
import os
import random
import struct

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tripwire.schemas import DecodeError, EncodeError, decode, default_catalog, encode, to_record
from tripwire.schemas.catalog import SchemaVersion
from tripwire.schemas.samples import sample_records, sample_run

pytestmark = pytest.mark.unit

SAMPLES = [*sample_run(31, steps=4), *sample_records()]
ENCODED = [encode(r) for r in SAMPLES]
EVENTS: SchemaVersion = default_catalog().current("events")
EVENTS_HEADER = b"\xc3\x01" + EVENTS.fingerprint


def _reason(data, validate=True) -> str:
    with pytest.raises(DecodeError) as e:
        decode(data, validate=validate)
    assert isinstance(e.value.reason, str) and e.value.reason
    assert str(e.value).startswith(e.value.reason)
    return e.value.reason


@pytest.mark.parametrize("data", ENCODED, ids=[type(r).__name__ for r in SAMPLES])
def test_every_truncation_is_truncated(data):
    reasons = {_reason(data[:n]) for n in range(len(data))}
    assert reasons == {"truncated"}


@pytest.mark.parametrize(
    "marker", [b"\xc3\x00", b"\xc3\x02", b"\x00\x01", b"\x00\x00", b"Ob", b"\xc2\x01"], ids=lambda m: m.hex()
)
def test_wrong_marker(marker):
    assert _reason(marker + ENCODED[0][2:]) == "bad_marker"


def test_confluent_wire_format_is_not_single_object():
    # magic byte 0 + 4-byte big-endian schema id + body
    assert _reason(b"\x00" + struct.pack(">I", 1) + ENCODED[0][10:]) == "bad_marker"


def test_unknown_fingerprint():
    data = b"\xc3\x01" + struct.pack("<q", -1234567) + ENCODED[0][10:]
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.reason == "unknown_fingerprint"
    assert struct.pack("<q", -1234567).hex() in str(e.value)


@pytest.mark.parametrize("branch", [5, 6, 63, -1, 1 << 40])
def test_union_branch_out_of_range(branch):
    zz = (branch << 1) ^ (branch >> 63)
    varint = bytearray()
    while True:
        b, zz = zz & 0x7F, zz >> 7
        varint.append(b | (0x80 if zz else 0))
        if not zz:
            break
    with pytest.raises(DecodeError) as e:
        decode(EVENTS_HEADER + bytes(varint) + ENCODED[1][11:])
    assert e.value.reason == "bad_union_branch"
    assert f"branch {branch} of a 5-branch union" in str(e.value)


def test_trailing_bytes():
    assert _reason(ENCODED[1] + b"\x00") == "trailing_bytes"


def test_negative_length_is_malformed():
    assert _reason(EVENTS_HEADER + b"\x00\x7f") == "malformed"  # ModelCall, event_id length -64


def test_invalid_utf8_is_malformed():
    assert _reason(EVENTS_HEADER + b"\x00\x04\xff\xfe") == "malformed"


def test_not_bytes():
    for bad in ("c3 01", None, 42, [0xC3, 1]):
        with pytest.raises(DecodeError) as e:
            decode(bad)  # type: ignore[arg-type]
        assert e.value.reason == "not_bytes"


def _raw_events(record: dict, branch: str) -> bytes:
    buf = io.BytesIO()
    buf.write(EVENTS_HEADER)
    schemaless_writer(buf, EVENTS.parsed, (f"tripwire.events.{branch}", record))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", "not-hex-at-all-but-a-valid-avro-string"),
        ("span_id", "0000000000000000"),
        ("input_tokens", -5),
        ("cost_usd", -1.0),
        ("event_id", "nope"),
        ("agent_id", ""),
    ],
)
def test_schema_valid_but_model_invalid(field, value):
    rec = to_record(SAMPLES[1])
    assert type(SAMPLES[1]).__name__ == "ModelCall"
    rec[field] = value
    data = _raw_events(rec, "ModelCall")  # fastavro accepts it: the schema only says string/long/double
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.reason == "invalid"
    assert field in str(e.value)
    # the trusted path does not re-validate (documented), but still returns the right type
    assert type(decode(data, validate=False)).__name__ == "ModelCall"


def test_ts_end_before_ts_start_is_invalid():
    rec = to_record(SAMPLES[1])
    rec["ts_end"], rec["ts_start"] = rec["ts_start"], rec["ts_end"]
    with pytest.raises(DecodeError, match="ts_end") as e:
        decode(_raw_events(rec, "ModelCall"))
    assert e.value.reason == "invalid"


def test_ten_megabytes_of_garbage():
    rnd = random.Random(1234)
    garbage = rnd.randbytes(10 * 1024 * 1024)
    assert _reason(garbage if garbage[:2] != b"\xc3\x01" else b"\x00" + garbage) == "bad_marker"
    assert _reason(b"\xc3\x01" + garbage) == "unknown_fingerprint"
    # garbage behind a real header: fastavro walks into it and must fail cleanly
    for header in {d[:10] for d in ENCODED}:
        assert _reason(header + garbage) in {"truncated", "malformed", "bad_union_branch", "trailing_bytes", "invalid"}
    assert _reason(os.urandom(0)) == "truncated"


def _check(data: bytes) -> None:
    try:
        model = decode(data)
    except DecodeError as e:
        assert e.reason
        return
    assert isinstance(model, BaseModel)
    assert type(model).model_validate(to_record(model)) == model  # a valid model
    try:
        decode(data, validate=False)
    except DecodeError:
        pytest.fail("the no-validation path failed where the validating path succeeded")


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.binary(max_size=4096))
def test_property_any_bytes(data):
    _check(data)


@_SETTINGS
@given(st.sampled_from(sorted({d[:10] for d in ENCODED})), st.binary(max_size=2048))
def test_property_valid_header_random_body(header, body):
    _check(header + body)


@_SETTINGS
@given(st.sampled_from(ENCODED), st.data())
def test_property_mutated_valid_encodings(data, draw):
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        i = draw.draw(st.integers(10, len(buf) - 1))
        buf[i] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(10, len(buf)))
    _check(bytes(buf[:cut]))


@_SETTINGS
@given(st.binary(max_size=2048))
def test_property_no_validation_path_raises_only_decode_error(body):
    try:
        decode(EVENTS_HEADER + body, validate=False)
    except DecodeError:
        pass


def test_invalid_errors_name_fields_but_never_echo_values():
    secret = "4111-1111-1111-1111 jane@example.com"
    rec = {**to_record(SAMPLES[1]), "prompt": secret, "trace_id": secret, "input_tokens": -7}
    with pytest.raises(DecodeError) as e:
        decode(_raw_events(rec, "ModelCall"))
    msg = str(e.value)
    assert e.value.reason == "invalid"
    assert "trace_id" in msg and "input_tokens" in msg
    assert "4111" not in msg and "jane" not in msg and "-7" not in msg
    bad = SAMPLES[1].model_copy(update={"trace_id": secret})
    with pytest.raises(EncodeError) as e2:
        encode(bad)
    assert "trace_id" in str(e2.value) and "4111" not in str(e2.value)
