"""processors/_batch_send.py: records of one partition go out as whole, closed batches, in order,
and each record's future gives its own offset (the batch's base offset + its position)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from tripwire.processors._batch_send import send_batched

pytestmark = pytest.mark.unit


class _Txn:
    """The two members of a transactional AIOKafkaProducer that ``send_batched`` uses; the broker
    gives each batch the next offsets of the partition, as it does under a transaction."""

    def __init__(self, batch_bytes: int, next_offset: int = 100) -> None:
        self.batch_bytes = batch_bytes
        self.next_offset = next_offset
        self.sent: list[tuple[str, int, bool, list[tuple[bytes | None, bytes | None]]]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0, is_transactional=True)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        closed = builder.closed()
        batch = DefaultRecordBatch(bytes(builder._build()))
        records = [(r.key, r.value) for r in batch]
        self.sent.append((topic, partition, closed, records))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(offset=self.next_offset))
        self.next_offset += len(records)
        return fut


def _send(txn: _Txn, records: list[tuple[bytes | None, bytes | None]]) -> list[int]:
    async def main() -> list[int]:
        futures = await send_batched(txn, "changelog", 3, records)
        return [f.result().offset for f in futures]

    return asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_one_batch_when_the_records_fit() -> None:
    txn = _Txn(batch_bytes=64 * 1024)
    records = [(f"k{i}".encode(), f"v{i}".encode() * 10) for i in range(5)]
    offsets = _send(txn, records)
    assert offsets == [100, 101, 102, 103, 104]
    assert txn.sent == [("changelog", 3, True, records)]  # closed: sent now, not after the linger


def test_records_split_over_batches_in_order_with_their_own_offsets() -> None:
    txn = _Txn(batch_bytes=1024)  # ~3 records of 300 bytes per batch
    records = [(f"k{i}".encode(), bytes([i]) * 300) for i in range(10)]
    offsets = _send(txn, records)
    assert offsets == list(range(100, 110))
    assert len(txn.sent) == 4
    assert [r for _, _, _, batch in txn.sent for r in batch] == records
    assert all(closed and topic == "changelog" and p == 3 for topic, p, closed, _ in txn.sent)


def test_a_record_larger_than_a_batch_goes_alone() -> None:
    txn = _Txn(batch_bytes=1024)
    big = (b"big", b"x" * 5000)
    records = [(b"a", b"1"), big, (b"b", None)]  # None: a tombstone (a deleted state)
    offsets = _send(txn, records)
    assert offsets == [100, 101, 102]
    assert [batch for _, _, _, batch in txn.sent] == [[(b"a", b"1")], [big], [(b"b", None)]]


def test_nothing_to_send() -> None:
    txn = _Txn(batch_bytes=1024)
    assert _send(txn, []) == []
    assert txn.sent == []
