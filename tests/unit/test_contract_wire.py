"""The Avro wire primitives (``tripwire.schemas.wire``): the one varint / zig-zag writer and the framing
headers the codec, the SDK's encoder and the sink's fast path share."""

from __future__ import annotations

from io import BytesIO

import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from tests import store_helpers as h
from tripwire.schemas import encode
from tripwire.schemas.wire import avro_string, parse_single_object, read_long, zigzag, zigzag_offset

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, 8191, 8192, -8193, 2**31, -(2**31), 2**62, -(2**63)])
def test_zigzag_matches_fastavro(n: int) -> None:


    buf = BytesIO()
    schemaless_writer(buf, "long", n)
    assert zigzag(n) == buf.getvalue()


def test_zigzag_matches_avro_long_encoding() -> None:
    assert [zigzag(n) for n in (0, -1, 1, -64, 64, 300)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x7f",
        b"\x80\x01",
        b"\xd8\x04",
    ]
    assert avro_string("ab") == b"\x04ab"


def test_parse_single_object() -> None:
    data = encode(h.model_call())
    fp, index, start = parse_single_object(data)  # type: ignore[misc]
    assert (len(fp), start) == (8, 11) and index >= 0
    assert parse_single_object(b"\x00\x01" + data[2:]) is None
    assert parse_single_object(data[:10]) is None


@given(st.integers(min_value=0, max_value=2**62))
def test_zigzag_offset_equals_zigzag(n: int) -> None:
    assert zigzag_offset(n) == zigzag(n)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_read_long_reads_what_zigzag_wrote(n: int) -> None:
    data = b"\xff" + zigzag(n) + b"\x00"
    assert read_long(data, 1) == (n, 1 + len(zigzag(n)))


def test_read_long_of_an_unterminated_varint_is_none() -> None:
    assert read_long(b"\x80\x80", 0) is None
    assert read_long(b"\xff" * 11, 0) is None
