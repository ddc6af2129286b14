"""Where a changelog's committed records end (processors/_changelog_end.py, faust fix 9), read from the
real broker: after transaction markers, aborted transactions and a store that is up to date."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from tests.helpers import create_topics, uid
from tripwire.processors._changelog_end import FIRST_WINDOW, last_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _transaction(bootstrap: str, topic: str, partition: int, n: int, *, commit: bool) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": uid("txn")})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=b"v", partition=partition)
    if commit:
        p.commit_transaction(30)
    else:
        p.flush(30)
        p.abort_transaction(30)


def _ends(bootstrap: str, topic: str, partitions: int) -> dict[TP, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uid("ends"), "isolation.level": "read_committed"})
    try:
        return {
            TP(topic, p): c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        c.close()


def _reader(bootstrap: str) -> Any:
    import aiokafka

    return aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )


def _last(bootstrap: str, spans: dict[TP, tuple[int | None, int]]) -> dict[TP, int | None]:
    return asyncio.run(asyncio.wait_for(last_records(lambda: _reader(bootstrap), spans), 60))


def test_last_records_skips_markers_and_aborted_transactions(kafka_bootstrap: str) -> None:
    topic = uid("changelog_end")
    create_topics(kafka_bootstrap, {topic: 3})
    # p0: 5 committed (offsets 0-4, marker 5), then 3 aborted (6-8, marker 9)
    _transaction(kafka_bootstrap, topic, 0, 5, commit=True)
    _transaction(kafka_bootstrap, topic, 0, 3, commit=False)
    # p1: 10 committed (0-9, marker 10), then more aborted records than several read windows
    _transaction(kafka_bootstrap, topic, 1, 10, commit=True)
    _transaction(kafka_bootstrap, topic, 1, 3 * FIRST_WINDOW * 16, commit=False)
    # p2: 4 committed (0-3, marker 4)
    _transaction(kafka_bootstrap, topic, 2, 4, commit=True)
    ends = _ends(kafka_bootstrap, topic, 3)
    p0, p1, p2 = (TP(topic, p) for p in range(3))
    assert ends == {p0: 10, p1: 11 + 3 * FIRST_WINDOW * 16 + 1, p2: 5}  # the markers count as offsets

    # a store with nothing yet: from the log start
    assert _last(kafka_bootstrap, {tp: (None, end) for tp, end in ends.items()}) == {p0: 4, p1: 9, p2: 3}
    # a store that holds offset 3 of p0 and 9 of p1: one record left in p0, none in p1 (first - 1)
    assert _last(kafka_bootstrap, {p0: (4, ends[p0]), p1: (10, ends[p1])}) == {p0: 4, p1: 9}
    # a store at the very end: nothing to read at all
    assert _last(kafka_bootstrap, {p2: (5, ends[p2])}) == {p2: 4}


def test_last_records_says_unknown_when_the_broker_does_not_answer() -> None:
    spans = {TP("t", 0): (None, 10)}

    def unreachable() -> Any:
        import aiokafka

        return aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", group_id=None, request_timeout_ms=1000)

    got = asyncio.run(asyncio.wait_for(last_records(unreachable, spans, timeout_s=2.0), 30))
    assert got == {TP("t", 0): None}  # faust's own highwater stays
