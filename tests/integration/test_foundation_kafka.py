"""The dev broker is a real Kafka: 10,000 messages round-trip in order through confluent-kafka
and through aiokafka (the client faust uses)."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer, Producer

from tests.helpers import create_topics, uid

pytestmark = pytest.mark.integration

N = 10_000


def _produce(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    for i in range(N):
        producer.produce(topic, key=b"run-1", value=str(i).encode())
        producer.poll(0)
    assert producer.flush(30) == 0


def _read_confluent(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": uid("g"), "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    got: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < N and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(int(msg.value()))
    finally:
        consumer.close()
    return got


async def _read_aiokafka(bootstrap: str, topic: str) -> list[int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=uid("g"),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list[int] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < N:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for records in batches.values():
                    got.extend(int(r.value) for r in records)
    finally:
        await consumer.stop()
    return got


def test_round_trip_in_order_with_both_clients(kafka_bootstrap: str) -> None:
    topic = uid("t")
    create_topics(kafka_bootstrap, {topic: 3})
    _produce(kafka_bootstrap, topic)
    expected = list(range(N))  # one key, so one partition, so total order
    assert _read_confluent(kafka_bootstrap, topic) == expected
    assert asyncio.run(_read_aiokafka(kafka_bootstrap, topic)) == expected
