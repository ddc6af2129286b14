"""The forwarded-events record of the internal by-agent / by-credential topics."""

from __future__ import annotations

import pytest

from tripwire.processors._forward import MAGIC, BatchError, pack_events, pack_records, unpack_events
from tripwire.schemas import encode
from tripwire.schemas.samples import sample_records

pytestmark = pytest.mark.unit


def test_events_come_back_in_order_byte_for_byte() -> None:
    values = [encode(r) for r in sample_records()[:5]] + [b""]
    packed = pack_events(values)
    assert packed.startswith(MAGIC)
    assert unpack_events(packed) == values
    assert unpack_events(pack_events([])) == []


def test_a_value_without_the_magic_is_one_event() -> None:
    event = encode(sample_records()[0])
    assert unpack_events(event) == [event]


@pytest.mark.parametrize("cut", [5, 9, 13, 22])
def test_a_truncated_batch_is_an_error_not_fewer_events(cut: int) -> None:
    packed = pack_events([b"abcd", b"efgh"])
    with pytest.raises(BatchError):
        unpack_events(packed[:cut])


def test_trailing_bytes_are_an_error() -> None:
    with pytest.raises(BatchError, match="bytes after"):
        unpack_events(pack_events([b"abcd"]) + b"x")


def test_a_busy_key_is_split_into_records_under_the_limit_in_order() -> None:
    values = [bytes([i % 256]) * 100 for i in range(50)]  # 50 events of 100 bytes
    records = pack_records(values, limit=1000)
    assert all(len(r) <= 1000 for r in records) and len(records) == 6  # 9 events (8 + 9 * 104 bytes) each
    assert [v for r in records for v in unpack_events(r)] == values
    huge = b"x" * 5000
    assert [unpack_events(r) for r in pack_records([b"a", huge, b"b"], limit=1000)] == [[b"a"], [huge], [b"b"]]
