"""Records of one topic partition sent as whole record batches into a Kafka transaction.

aiokafka's ``send`` costs ~16 us of CPU per record (a future, the accumulator, a metadata check
per call); a commit sends about one record per event read (the changed states, the run
summaries), so per-record sends were a tenth of a worker's CPU. ``AIOKafkaProducer.send_batch``
takes a ``BatchBuilder`` filled in C (~2 us per record) and gives one future for the batch; the
record at position ``i`` of a batch has offset ``base offset + i`` (a batch of a transactional
producer holds only data records), which :class:`RecordFuture` gives back as the record's own
metadata, as ``send`` would.

A batch is closed before it is handed over, so it goes out at once (not after the linger): the
next batch of the same partition waits for the previous one to be drained, so the producer's
``max_batch_size`` (the app sets it large) decides how many round trips a commit takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class _Metadata:
    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset


class RecordFuture:
    """The delivery of the record at ``index`` of a batch (``batch``: the batch's future)."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: Any, index: int) -> None:
        self.batch = batch
        self.index = index

    def result(self) -> _Metadata:
        """The record's metadata (its ``offset``); raises what the batch's delivery raised."""
        return _Metadata(self.batch.result().offset + self.index)


async def send_batched(
    txn: Any, topic: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
) -> list[RecordFuture]:
    """Send ``records`` (key, value) to ``topic``/``partition`` through the transactional producer
    ``txn`` in as few batches as its batch size allows, in order; one future per record."""
    futures: list[RecordFuture] = []
    builder = txn.create_batch()
    start = 0  # index in ``records`` of the builder's first record
    for i, (key, value) in enumerate(records):
        if builder.append(key=key, value=value, timestamp=None) is None:  # full (never on its first)
            batch = await _submit(txn, builder, topic, partition)
            futures.extend(RecordFuture(batch, j) for j in range(i - start))
            builder, start = txn.create_batch(), i
            builder.append(key=key, value=value, timestamp=None)
    if len(records) > start:
        batch = await _submit(txn, builder, topic, partition)
        futures.extend(RecordFuture(batch, j) for j in range(len(records) - start))
    return futures


async def _submit(txn: Any, builder: Any, topic: str, partition: int) -> Any:
    builder.close()  # nothing more goes in: the batch is ready to go now, not after the linger
    return await txn.send_batch(builder, topic, partition=partition)
