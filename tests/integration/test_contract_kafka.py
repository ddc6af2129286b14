"""Contract bytes through the real Kafka broker: every event of several runs, framed both ways,
keyed by run_id, comes back in order per run and decodes to the identical model; a corrupt
message in the same stream surfaces as a DecodeError with a reason, and the next ones still decode."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from tests.helpers import create_topics, uid, wait_until
from tripwire.schemas import AvroCodec, ConfluentCodec, DecodeError, topic_names
from tripwire.schemas.samples import sample_run

pytestmark = pytest.mark.integration


def _consume_all(bootstrap: str, topic: str, group: str, expected: int) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list = []

    def poll() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg)
        return len(got) >= expected

    try:
        wait_until(poll, timeout=30, interval=0, message=f"{expected} messages on {topic}")
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("framing", ["single_object", "confluent"])
def test_events_round_trip_through_kafka(kafka_bootstrap, framing):
    prefix = uid("t")
    topic = topic_names(prefix).events
    create_topics(kafka_bootstrap, {topic: 3})
    codec = AvroCodec() if framing == "single_object" else ConfluentCodec(f"mock://{uid('sr')}", topic_prefix=prefix)
    runs = [sample_run(seed, steps=5) for seed in range(6)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    corrupt_run = runs[0][0].run_id
    for i, run in enumerate(runs):
        for e in run:
            producer.produce(topic, key=e.run_id.encode(), value=codec.encode(e, validate=False))
        if i == 0:  # a truncated message in the middle of run 0's partition
            producer.produce(topic, key=corrupt_run.encode(), value=codec.encode(run[1])[:-3])
    assert producer.flush(30) == 0
    total = sum(len(r) for r in runs) + 1

    messages = _consume_all(kafka_bootstrap, topic, uid("g"), total)
    assert len(messages) == total
    by_run: dict[str, list] = {}
    errors = []
    for m in messages:
        try:
            e = codec.decode(m.value())
        except DecodeError as err:
            errors.append((m.key().decode(), err.reason))
            continue
        assert e.run_id == m.key().decode()
        by_run.setdefault(e.run_id, []).append(e)
    assert errors == [(corrupt_run, "truncated")]
    assert by_run == {run[0].run_id: run for run in runs}  # every event, in seq order, identical
